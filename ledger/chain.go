package ledger

import (
	"crypto/ed25519"
	"fmt"
)

// Head is what an owner needs to append to its chain: the last block's sequence,
// ID and time. The zero Head is an empty chain.
type Head struct {
	Seq  uint64
	ID   BlockID
	Time int64
}

// Head returns the block as the head of its chain.
func (b *Block) Head() Head { return Head{Seq: b.Seq, ID: b.ID(), Time: b.Time} }

// NewBlock makes and signs the block after head on priv's chain. now is the
// owner's clock in Unix milliseconds; a clock that went back since head is read
// as head's time, so the chain's times never decrease (ValidateNext).
func NewBlock(priv ed25519.PrivateKey, head Head, kind Kind, body []byte, now int64) (*Block, error) {
	if len(priv) != ed25519.PrivateKeySize {
		return nil, fmt.Errorf("ledger: private key of %d bytes", len(priv))
	}
	if len(body) > MaxBodySize {
		return nil, fmt.Errorf("%w: body of %d bytes", ErrMalformed, len(body))
	}
	b := &Block{Seq: head.Seq + 1, Prev: head.ID, Kind: kind, Time: max(now, head.Time), Body: body}
	copy(b.Owner[:], priv.Public().(ed25519.PublicKey))
	if err := checkBody(b); err != nil {
		return nil, err
	}
	b.Sign(priv)
	return b, nil
}

// NewEarn makes and signs a server's proposal after head. e must be complete:
// its computed fields filled by Price.
func NewEarn(priv ed25519.PrivateKey, head Head, e *Earn, now int64) (*Block, error) {
	if err := e.check(); err != nil {
		return nil, err
	}
	return NewBlock(priv, head, KindEarn, e.Encode(), now)
}

// NewSpend makes and signs a client's agreement after head.
func NewSpend(priv ed25519.PrivateKey, head Head, s *Spend, now int64) (*Block, error) {
	return NewBlock(priv, head, KindSpend, s.Encode(), now)
}

// SpendFor is the agreement to the proposal earn: its server, ID and sequence,
// and the amount it charges. The client signs it (NewSpend) only after checking
// the proposal (ValidateEarn, and against what it asked and received).
func SpendFor(earn *Block) (*Spend, error) {
	e, err := earn.Earn()
	if err != nil {
		return nil, err
	}
	return &Spend{Server: earn.Owner, Proposal: earn.ID(), Seq: earn.Seq, Amount: e.Spend}, nil
}
