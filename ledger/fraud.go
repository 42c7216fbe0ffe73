package ledger

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
)

// A fork is two different blocks an owner signed at the same sequence: whoever
// holds both can follow either chain, so the owner could spend the same credits
// twice. The pair proves it by itself — two valid signatures by one key, nothing
// to trust about whoever relays it — and every node that verifies it freezes the
// owner's credits.

// Errors of forks and their proofs.
var (
	// ErrFork: the block is a second block at its chain's head sequence: its
	// owner forked its chain, and is frozen.
	ErrFork = errors.New("ledger: fork")
	// ErrNotFork: a fraud proof whose blocks are not a fork (different owners or
	// sequences, or the same block twice).
	ErrNotFork = errors.New("ledger: not a fork")
)

// FraudProof is a fork: two validly signed blocks with the same owner and sequence
// and different IDs. A and B are in ascending ID order, so a fork has one proof.
type FraudProof struct {
	A, B *Block
}

// fraudTag prefixes an encoded proof, so it is never mistaken for a block.
const fraudTag = "imece/fraud/1\n"

// MaxFraudProofSize bounds an encoded proof.
const MaxFraudProofSize = len(fraudTag) + 2*(4+MaxBlockSize)

// DetectFork reports whether a and b are a fork, and if so its proof. It checks
// the signatures, so a proof it returns verifies.
func DetectFork(a, b *Block) (*FraudProof, bool) {
	p := &FraudProof{A: a, B: b}
	if x, y := a.ID(), b.ID(); bytes.Compare(x[:], y[:]) > 0 {
		p.A, p.B = b, a
	}
	if p.Verify() != nil {
		return nil, false
	}
	return p, true
}

// Owner is the key that forked.
func (p *FraudProof) Owner() Key { return p.A.Owner }

// Verify checks that the proof is a fork: same owner, same sequence, different
// IDs in ascending order, both signatures valid.
func (p *FraudProof) Verify() error {
	if p.A == nil || p.B == nil {
		return fmt.Errorf("%w: missing block", ErrNotFork)
	}
	a, b := p.A.ID(), p.B.ID()
	switch {
	case p.A.Owner != p.B.Owner:
		return fmt.Errorf("%w: blocks of %s and %s", ErrNotFork, p.A.Owner, p.B.Owner)
	case p.A.Seq != p.B.Seq:
		return fmt.Errorf("%w: blocks %d and %d of %s", ErrNotFork, p.A.Seq, p.B.Seq, p.A.Owner)
	case bytes.Compare(a[:], b[:]) >= 0:
		return fmt.Errorf("%w: blocks %s and %s are the same or out of order", ErrNotFork, a, b)
	}
	if err := p.A.VerifySignature(); err != nil {
		return err
	}
	return p.B.VerifySignature()
}

// Encode returns the proof's canonical bytes:
//
//	proof := "imece/fraud/1\n" u32 len_a block_a u32 len_b block_b   (little-endian)
func (p *FraudProof) Encode() []byte {
	a, b := p.A.Encode(), p.B.Encode()
	out := make([]byte, 0, len(fraudTag)+8+len(a)+len(b))
	out = append(out, fraudTag...)
	out = binary.LittleEndian.AppendUint32(out, uint32(len(a)))
	out = append(out, a...)
	out = binary.LittleEndian.AppendUint32(out, uint32(len(b)))
	return append(out, b...)
}

// DecodeFraudProof parses a canonical proof. It checks the encoding only; call
// Verify before acting on it.
func DecodeFraudProof(data []byte) (*FraudProof, error) {
	if len(data) > MaxFraudProofSize || !bytes.HasPrefix(data, []byte(fraudTag)) {
		return nil, fmt.Errorf("%w: not a fraud proof", ErrMalformed)
	}
	rest := data[len(fraudTag):]
	next := func() (*Block, error) {
		if len(rest) < 4 {
			return nil, fmt.Errorf("%w: fraud proof truncated", ErrMalformed)
		}
		n := binary.LittleEndian.Uint32(rest)
		if uint64(n) > uint64(len(rest)-4) {
			return nil, fmt.Errorf("%w: fraud proof block of %d bytes in %d", ErrMalformed, n, len(rest)-4)
		}
		b, err := DecodeBlock(rest[4 : 4+n])
		rest = rest[4+n:]
		return b, err
	}
	a, err := next()
	if err != nil {
		return nil, err
	}
	b, err := next()
	if err != nil {
		return nil, err
	}
	if len(rest) != 0 {
		return nil, fmt.Errorf("%w: %d bytes after the fraud proof", ErrMalformed, len(rest))
	}
	return &FraudProof{A: a, B: b}, nil
}
