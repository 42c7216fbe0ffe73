package ledger

import (
	"errors"
	"fmt"
)

// The rules every node checks, in two families with different consequences.
//
// Chain rules (ValidateNext, and in State the replay of a proposal) depend only
// on the block's own chain: every node decides them the same way whatever else it
// has seen, so a block that breaks one is refused and its chain ends there until
// its owner appends a valid one.
//
// Receipt rules (ValidateEarn, ValidatePair, and in State a second agreement to a
// settled proposal) relate a block to the model, the genesis file or another
// chain. A node may not know the model yet, or may see the halves in either order,
// so a block that breaks one stays on its chain, where its owner signed it; its
// receipt is void: neither half counts towards any balance. Deciding otherwise
// would make which blocks a node holds depend on the order they arrived in.
var (
	// ErrGap: the block's sequence skips ahead of its chain's head; the blocks in
	// between are missing (fetch them by sync).
	ErrGap = errors.New("ledger: gap in chain")
	// ErrOutOfOrder: the block's sequence is at or behind its chain's head: an old
	// block delivered again or reordered, or a fork of an earlier block (which the
	// store, holding the earlier block, turns into a fraud proof).
	ErrOutOfOrder = errors.New("ledger: block out of order")
	// ErrBrokenLink: the block does not link to its chain's head (Prev is not the
	// head's ID, or the owners differ).
	ErrBrokenLink = errors.New("ledger: broken link")
	// ErrTime: the block is older than the block before it. Time is informational
	// (the owner's clock), but an owner's chain never goes back in time, so a
	// chain's blocks can be ordered by it in histories and exports.
	ErrTime = errors.New("ledger: block time goes back")
	// ErrSelfReceipt: a receipt whose two parties are the same key: an owner
	// would mint credits by serving itself.
	ErrSelfReceipt = errors.New("ledger: receipt with oneself")
	// ErrSelfAudit: an audit whose subject is its auditor: a node would vouch
	// for itself.
	ErrSelfAudit = errors.New("ledger: audit of oneself")
	// ErrDuplicate: the block is already its chain's head. Gossip delivers blocks
	// more than once; a duplicate is harmless and changes nothing.
	ErrDuplicate = errors.New("ledger: duplicate block")
	// ErrReplay: a proposal for a settlement window its server has already
	// proposed (for that client and session), or an agreement to a proposal that
	// is already agreed.
	ErrReplay = errors.New("ledger: replayed receipt")

	// ErrAmount: a receipt's FLOPs, amounts or precision factor are not what the
	// formulas give, or the two halves disagree on the amount.
	ErrAmount = errors.New("ledger: wrong amount")
	// ErrRange: a receipt's layer range, results or factors are impossible for its
	// model or its network (layers beyond the model, a multiplier above the top
	// tier, results from a stage that is not the last).
	ErrRange = errors.New("ledger: receipt out of range")
	// ErrUnlinked: a half whose other half does not exist or does not match: an
	// agreement naming a block that is not a proposal to its author, with other
	// parties, or another ID or sequence.
	ErrUnlinked = errors.New("ledger: unlinked receipt half")
)

// ValidateNext checks the chain rules for b as the block after prev (nil when b
// should be its chain's first): sequence, link, time, a well-formed body for its
// kind (no receipt with oneself, no audit of oneself), and the owner's signature. It checks the cheap rules first, so a flood of
// bad blocks costs no signature verifications. It does not detect a fork (b at
// prev's sequence with another ID): that is DetectFork's.
func ValidateNext(prev, b *Block) error {
	if b.Seq == 0 || len(b.Body) > MaxBodySize {
		return fmt.Errorf("%w: block %d of %s with a %d-byte body", ErrMalformed, b.Seq, b.Owner, len(b.Body))
	}
	if prev == nil {
		if b.Seq != 1 {
			return fmt.Errorf("%w: block %d of %s with no block before it", ErrGap, b.Seq, b.Owner)
		}
		if !b.Prev.IsZero() {
			return fmt.Errorf("%w: first block of %s links to %s", ErrBrokenLink, b.Owner, b.Prev)
		}
	} else {
		switch {
		case b.Owner != prev.Owner:
			return fmt.Errorf("%w: block %d of %s follows a block of %s", ErrBrokenLink, b.Seq, b.Owner, prev.Owner)
		case b.Seq <= prev.Seq:
			return fmt.Errorf("%w: block %d of %s after block %d", ErrOutOfOrder, b.Seq, b.Owner, prev.Seq)
		case b.Seq > prev.Seq+1:
			return fmt.Errorf("%w: block %d of %s after block %d", ErrGap, b.Seq, b.Owner, prev.Seq)
		case b.Prev != prev.ID():
			return fmt.Errorf("%w: block %d of %s links to %s, not %s", ErrBrokenLink, b.Seq, b.Owner, b.Prev, prev.ID())
		case b.Time < prev.Time:
			return fmt.Errorf("%w: block %d of %s at %d after block %d at %d", ErrTime, b.Seq, b.Owner, b.Time, prev.Seq, prev.Time)
		}
	}
	if err := checkBody(b); err != nil {
		return err
	}
	return b.VerifySignature()
}

// checkBody decodes the block's body for its kind and checks it against the
// block's owner.
func checkBody(b *Block) error {
	switch b.Kind {
	case KindEarn:
		e, err := DecodeEarn(b.Body)
		if err != nil {
			return fmt.Errorf("block %d of %s: %w", b.Seq, b.Owner, err)
		}
		if e.Client == b.Owner {
			return fmt.Errorf("%w: block %d of %s proposes to its owner", ErrSelfReceipt, b.Seq, b.Owner)
		}
	case KindSpend:
		s, err := DecodeSpend(b.Body)
		if err != nil {
			return fmt.Errorf("block %d of %s: %w", b.Seq, b.Owner, err)
		}
		if s.Server == b.Owner {
			return fmt.Errorf("%w: block %d of %s agrees with its owner", ErrSelfReceipt, b.Seq, b.Owner)
		}
	case KindHardware:
		if _, err := DecodeHardware(b.Body); err != nil {
			return fmt.Errorf("block %d of %s: %w", b.Seq, b.Owner, err)
		}
	case KindAudit:
		a, err := DecodeAudit(b.Body)
		if err != nil {
			return fmt.Errorf("block %d of %s: %w", b.Seq, b.Owner, err)
		}
		if a.Subject == b.Owner {
			return fmt.Errorf("%w: block %d of %s audits its owner", ErrSelfAudit, b.Seq, b.Owner)
		}
	default:
		return fmt.Errorf("%w: block %d of %s has kind %d", ErrMalformed, b.Seq, b.Owner, b.Kind)
	}
	return nil
}

// ValidateEarn checks a proposal against its model's cost and the network's
// genesis: the layer range within the model, results only from the last stage,
// the multiplier within the tier table, and every computed field (precision,
// FLOPs, Amount, Spend) equal to what the formulas give. e is b's decoded body.
// Clients run it before countersigning, validators before counting a receipt.
// It does not check Multiplier and Reliability against the server's chains:
// the client does when it agrees, and State credits a receipt at most the
// factors the trust rules allow whatever the proposal says.
func ValidateEarn(b *Block, e *Earn, c Cost, g *Genesis) error {
	return validateEarn(b.Owner, b.Seq, e, c, g)
}

func validateEarn(server Key, seq uint64, e *Earn, c Cost, g *Genesis) error {
	at := func(err error, format string, args ...any) error {
		return fmt.Errorf("%w: earn %d of %s: %s", err, seq, server, fmt.Sprintf(format, args...))
	}
	if int(e.Last) > c.Layers {
		return at(ErrRange, "layers [%d, %d) of a %d-layer model", e.First, e.Last, c.Layers)
	}
	if e.Results > 0 && int(e.Last) != c.Layers {
		return at(ErrRange, "%d results from layers [%d, %d) of %d", e.Results, e.First, e.Last, c.Layers)
	}
	if top := g.MaxMultiplier(); e.Multiplier > top {
		return at(ErrRange, "multiplier %d above the top tier's %d", e.Multiplier, top)
	}
	want := *e
	if err := want.Price(c, g); err != nil {
		return fmt.Errorf("earn %d of %s: %w", seq, server, err)
	}
	switch {
	case e.Precision != want.Precision:
		return at(ErrAmount, "precision %d, want %d", e.Precision, want.Precision)
	case e.FLOPs != want.FLOPs:
		return at(ErrAmount, "%d FLOPs, want %d", e.FLOPs, want.FLOPs)
	case e.Amount != want.Amount:
		return at(ErrAmount, "earns %d, want %d", e.Amount, want.Amount)
	case e.Spend != want.Spend:
		return at(ErrAmount, "charges %d, want %d", e.Spend, want.Spend)
	}
	return nil
}

// ValidatePair checks that spend is the agreement to exactly the proposal earn:
// it names earn's ID and sequence and its author, its author is earn's client,
// and it spends what earn charges. Both blocks must have passed ValidateNext; the
// pair's signatures are not checked again.
func ValidatePair(earn, spend *Block) error {
	e, err := earn.Earn()
	if err != nil {
		return err
	}
	s, err := spend.Spend()
	if err != nil {
		return err
	}
	return checkPair(earn.Owner, earn.Seq, earn.ID(), e, spend.Owner, spend.Seq, s)
}

// checkPair is ValidatePair on decoded halves: the proposal (server, seq, id, e)
// and the agreement s, block seq of client.
func checkPair(server Key, seq uint64, id BlockID, e *Earn, client Key, clientSeq uint64, s *Spend) error {
	switch {
	case s.Proposal != id || s.Seq != seq:
		return fmt.Errorf("%w: spend %d of %s names block %d %s, not %d %s", ErrUnlinked, clientSeq, client, s.Seq, s.Proposal, seq, id)
	case s.Server != server:
		return fmt.Errorf("%w: spend %d of %s names server %s, the proposal is %s's", ErrUnlinked, clientSeq, client, s.Server, server)
	case e.Client != client:
		return fmt.Errorf("%w: spend %d of %s agrees to a proposal to %s", ErrUnlinked, clientSeq, client, e.Client)
	case s.Amount != e.Spend:
		return fmt.Errorf("%w: spend %d of %s spends %d, the proposal charges %d", ErrAmount, clientSeq, client, s.Amount, e.Spend)
	}
	return nil
}
