package ledger

import (
	"bytes"
	"cmp"
	"fmt"
	"math"
	"math/bits"
	"slices"
	"strconv"
)

// State derives balances from chains: apply every block of every chain, each
// chain in its order, the chains interleaved in any order, and it holds what the
// blocks imply — heads, settled totals, unsettled receipts, frozen owners. It is
// what validators, the store's balance index and the "insufficient credits" check
// use. It keeps no blocks but each chain's head (the store keeps them), so its
// memory is the pending sets, one head and a few totals per owner, a bit per
// block of a server's chain (which of its proposals are settled) and one entry per
// (server, client, session) (the last window proposed).
//
// # Receipts
//
// A proposal (Earn) counts once its agreement (Spend) has been applied and the
// proposal's amounts have been verified against its model; then, and only then,
// the server's Earned grows by the receipt's credit (at most Amount: the trust
// rules of doc.go) and the client's Spent by Spend. A credit is recomputed when
// an audit of its server or another client's observation of it arrives later. Until
// then the proposal is pending. An agreement whose proposal's sequence is beyond
// its server's head (it arrived first, from another chain) is held as pending
// too, and resolved when the server's chain reaches that sequence.
//
// A receipt that breaks a receipt rule (see validate.go) is void: both halves
// stay on their chains, neither counts. The chain rules, and a server proposing a
// window it already proposed, refuse the block instead. Because of that split,
// once every block has been applied the balances are the same whatever the order
// of the chains' interleaving. (Which sentinel a void half of a malicious
// agreement is reported with may depend on the order; what counts does not.)
//
// # Unknown models
//
// Amounts are recomputed with the cost of the proposal's model, which the caller's
// resolver supplies. When it does not know the model yet, the proposal is kept
// unverified: an agreement to it is matched but not counted, and Revalidate, after
// the caller has learnt more models, verifies and settles (or voids) them.
//
// # Forks
//
// A block at its chain's head sequence with another ID is a fork the State sees
// by itself; a fork of an earlier block only the store can see (it holds the
// earlier block), and passes to ApplyFraudProof. A frozen owner's chain is still
// applied (its receipts are history, and its counterparties' balances depend on
// them), but its Available balance is 0.
//
// A State is not safe for concurrent use.
type State struct {
	genesis   *Genesis
	costOf    func(model []byte) (Cost, bool)
	accounts  map[Key]*account
	proposals map[BlockID]*proposal
	orphans   map[slot][]*agreement
}

// account is what the State keeps of one owner.
type account struct {
	head   *Block
	headID BlockID
	earned, spent,
	pendingEarn, pendingSpend u128
	fraud *FraudProof
	// settled marks the sequences of the owner's proposals that are settled, so
	// that a second agreement to one is a replay.
	settled bitset
	// windows is the last window proposed per (client, session).
	windows map[[48]byte]uint32

	// The trust rules' bookkeeping (trust_state.go).
	// hw is the owner's hardware claim as of its head.
	hw *hwState
	// paid are the servers the owner has agreed with: the subjects it has
	// standing to audit.
	paid map[Key]struct{}
	// audits are the audits of the owner by auditors with standing, by time.
	audits []auditRec
	// credits are the owner's settled receipts as server, by time; epochs
	// what the owner's receipts of each evidence epoch share.
	credits []*credit
	epochs  map[int64]*epochBook
}

// slot is a position in a server's chain: where an agreement's proposal is.
type slot struct {
	server Key
	seq    uint64
}

// proposal is a pending Earn.
type proposal struct {
	id       BlockID
	server   Key
	seq      uint64
	earn     *Earn
	verified bool
	// agreement is the matching Spend of an unverified proposal.
	agreement *agreement
	// time is the proposal's block time; mHW, mflops and mbps the server's
	// hardware in force then (hardwareAt); work what that hardware takes for
	// the work (WorkMicros), once the model is known.
	time         int64
	mHW          uint32
	mflops, mbps uint64
	work         uint64
}

// agreement is a pending Spend.
type agreement struct {
	id     BlockID
	client Key
	seq    uint64
	spend  Spend
}

// Result tells what applying a block did to receipts besides appending it.
type Result struct {
	// Settled are the receipts the block completed.
	Settled []Receipt
	// Void are the halves found void, with the reason.
	Void []Void
}

// Receipt is a settled receipt: both halves present and verified.
type Receipt struct {
	Proposal, Agreement BlockID
	Server, Client      Key
	// Earned and Spent are the milli-GFT credited to the server and debited from
	// the client. Earned is the receipt's credit when it settled, before its
	// epoch's per-client cap: at most the proposal's Amount, and recomputed
	// later when audits or other clients' observations of the server arrive
	// (the balance follows all of that; this does not).
	Earned, Spent uint64
}

// Void is a half of a receipt that will never count.
type Void struct {
	Block BlockID
	Owner Key
	Seq   uint64
	// Err wraps the rule it breaks: ErrAmount, ErrRange, ErrUnlinked, ErrReplay
	// or ErrCost.
	Err error
}

// Balance is an owner's credit, in milli-GFT.
type Balance struct {
	// Allowance is the genesis starter allowance every identity has.
	Allowance uint64
	// Earned and Spent sum the owner's settled receipts as server and as client.
	Earned, Spent uint64
	// PendingEarn sums the owner's proposals not yet settled; PendingSpend its
	// agreements not yet settled (waiting for their proposal or its verification).
	PendingEarn, PendingSpend uint64
	// Frozen is set when the owner forked its chain.
	Frozen bool
}

// Available is what the owner can spend: Allowance + Earned − Spent, negative
// when agreements signed concurrently at several servers overdrew it (blocks are
// not refused for it: that would make chains depend on the order receipts
// arrive), 0 when frozen.
func (b Balance) Available() int64 {
	if b.Frozen {
		return 0
	}
	have, carry := bits.Add64(b.Allowance, b.Earned, 0)
	if carry != 0 {
		return math.MaxInt64
	}
	if have >= b.Spent {
		return int64(min(have-b.Spent, math.MaxInt64))
	}
	return -int64(min(b.Spent-have, math.MaxInt64))
}

// Proposal is a pending proposal, for the server that waits for its client and
// for the dashboards.
type Proposal struct {
	ID     BlockID
	Server Key
	Seq    uint64
	Earn   Earn
	// Agreed: the client's agreement is in, the amounts are not verified yet.
	Agreed bool
	// Verified: the amounts are checked against the model.
	Verified bool
}

// NewState returns an empty state for the network g (validated, as
// ParseGenesis and DefaultGenesis return it). costOf resolves a model's binary
// CID to its cost, reporting false for a model it does not know (yet); nil
// knows none.
func NewState(g *Genesis, costOf func(model []byte) (Cost, bool)) *State {
	if costOf == nil {
		costOf = func([]byte) (Cost, bool) { return Cost{}, false }
	}
	return &State{
		genesis:   g,
		costOf:    costOf,
		accounts:  make(map[Key]*account),
		proposals: make(map[BlockID]*proposal),
		orphans:   make(map[slot][]*agreement),
	}
}

func (s *State) account(k Key) *account {
	a := s.accounts[k]
	if a == nil {
		a = &account{}
		s.accounts[k] = a
	}
	return a
}

// Apply appends b to its owner's chain if the chain rules allow, and settles,
// holds or voids the receipt it belongs to. An error means b was not applied:
// ErrDuplicate (already the head: ignore it), ErrOutOfOrder, ErrGap (fetch the
// blocks before it), ErrBrokenLink, ErrTime, ErrMalformed, ErrSelfReceipt,
// ErrBadSignature, ErrReplay (a window proposed twice), or ErrFork (b forks the
// chain at its head: the owner is now frozen, and FraudProof has the proof to
// gossip).
func (s *State) Apply(b *Block) (Result, error) {
	var prev *Block
	a := s.accounts[b.Owner]
	if a != nil {
		prev = a.head
	}
	if prev != nil && b.Seq == prev.Seq {
		id := b.ID()
		if id == a.headID {
			return Result{}, fmt.Errorf("%w: block %d of %s", ErrDuplicate, b.Seq, b.Owner)
		}
		if err := b.VerifySignature(); err != nil {
			return Result{}, err
		}
		p, _ := DetectFork(prev, b)
		if a.fraud == nil {
			a.fraud = p
		}
		return Result{}, fmt.Errorf("%w: blocks %s and %s are both block %d of %s", ErrFork, a.headID, id, b.Seq, b.Owner)
	}
	if err := ValidateNext(prev, b); err != nil {
		return Result{}, err
	}
	var e *Earn
	var sp *Spend
	var hw *Hardware
	var au *Audit
	var err error
	switch b.Kind {
	case KindEarn:
		if e, err = b.Earn(); err != nil {
			return Result{}, err
		}
		if a != nil {
			if last, ok := a.windows[windowKey(e)]; ok && e.Window <= last {
				return Result{}, fmt.Errorf("%w: earn %d of %s proposes window %d of session %x to %s after window %d",
					ErrReplay, b.Seq, b.Owner, e.Window, e.Session, e.Client, last)
			}
		}
	case KindSpend:
		sp, err = b.Spend()
	case KindHardware:
		hw, err = b.Hardware()
	case KindAudit:
		au, err = b.Audit()
	default:
		err = fmt.Errorf("%w: block %d of %s has kind %d", ErrMalformed, b.Seq, b.Owner, b.Kind)
	}
	if err != nil {
		return Result{}, err
	}

	a = s.account(b.Owner)
	id := b.ID()
	a.head, a.headID = b, id
	var res Result
	if e != nil {
		if a.windows == nil {
			a.windows = make(map[[48]byte]uint32)
		}
		a.windows[windowKey(e)] = e.Window
		s.propose(&res, b, id, e)
		return res, nil
	}
	// Agreements held for this sequence named a proposal; it is not one.
	for _, ag := range s.takeOrphans(b.Owner, b.Seq) {
		s.void(&res, ag, fmt.Errorf("%w: spend %d of %s names block %d of %s, which is not a proposal", ErrUnlinked, ag.seq, ag.client, b.Seq, b.Owner))
	}
	switch {
	case sp != nil:
		if a.paid == nil {
			a.paid = make(map[Key]struct{})
		}
		a.paid[sp.Server] = struct{}{}
		s.agree(&res, &agreement{id: id, client: b.Owner, seq: b.Seq, spend: *sp})
	case hw != nil:
		s.applyHardware(a, hw, b.Time)
	case au != nil:
		s.applyAudit(b.Owner, b.Seq, au, b.Time)
	}
	return res, nil
}

func windowKey(e *Earn) [48]byte {
	var k [48]byte
	copy(k[:], e.Client[:])
	copy(k[32:], e.Session[:])
	return k
}

// propose records a new proposal, verifies it if its model is known, and
// resolves the agreements that were waiting for it.
func (s *State) propose(res *Result, b *Block, id BlockID, e *Earn) {
	server, seq := b.Owner, b.Seq
	p := &proposal{id: id, server: server, seq: seq, earn: e, time: b.Time}
	p.mHW, p.mflops, p.mbps = s.hardwareAt(s.accounts[server], b.Time)
	waiting := s.takeOrphans(server, seq)
	if c, ok := s.costOf(e.Model); ok {
		if err := validateEarn(server, seq, e, c, s.genesis); err != nil {
			res.Void = append(res.Void, Void{Block: id, Owner: server, Seq: seq, Err: err})
			for _, ag := range waiting {
				s.void(res, ag, fmt.Errorf("%w: spend %d of %s agrees to void proposal %s", ErrUnlinked, ag.seq, ag.client, id))
			}
			return
		}
		p.verified, p.work = true, WorkMicros(c, e, p.mflops, p.mbps)
	}
	s.proposals[id] = p
	s.account(server).pendingEarn.add(e.Amount)
	for _, ag := range waiting {
		s.match(res, p, ag)
	}
}

// takeOrphans removes the agreements held for block seq of server, no longer
// pending, in a fixed order (by client, then by the client's chain), so that
// which of them wins does not depend on the order the chains arrived in.
func (s *State) takeOrphans(server Key, seq uint64) []*agreement {
	at := slot{server, seq}
	waiting := s.orphans[at]
	delete(s.orphans, at)
	slices.SortFunc(waiting, func(x, y *agreement) int {
		if c := bytes.Compare(x.client[:], y.client[:]); c != 0 {
			return c
		}
		return cmp.Compare(x.seq, y.seq)
	})
	for _, ag := range waiting {
		s.account(ag.client).pendingSpend.sub(ag.spend.Amount)
	}
	return waiting
}

// agree records a new agreement: matched against its proposal when that is
// known, held when the proposal's sequence is beyond its server's head, void
// otherwise.
func (s *State) agree(res *Result, ag *agreement) {
	sp := &ag.spend
	server := s.accounts[sp.Server]
	var head uint64
	if server != nil && server.head != nil {
		head = server.head.Seq
	}
	if sp.Seq > head {
		at := slot{sp.Server, sp.Seq}
		s.orphans[at] = append(s.orphans[at], ag)
		s.account(ag.client).pendingSpend.add(sp.Amount)
		return
	}
	if p := s.proposals[sp.Proposal]; p != nil {
		s.match(res, p, ag)
		return
	}
	if server.settled.has(sp.Seq) {
		s.void(res, ag, fmt.Errorf("%w: spend %d of %s agrees to block %d of %s, already settled", ErrReplay, ag.seq, ag.client, sp.Seq, sp.Server))
		return
	}
	s.void(res, ag, fmt.Errorf("%w: spend %d of %s names block %d %s of %s, which is not a pending proposal", ErrUnlinked, ag.seq, ag.client, sp.Seq, sp.Proposal, sp.Server))
}

// match pairs a pending proposal with an agreement naming it, settling the
// receipt if the proposal is verified.
func (s *State) match(res *Result, p *proposal, ag *agreement) {
	if err := checkPair(p.server, p.seq, p.id, p.earn, ag.client, ag.seq, &ag.spend); err != nil {
		s.void(res, ag, err)
		return
	}
	if p.agreement != nil {
		s.void(res, ag, fmt.Errorf("%w: spend %d of %s agrees to %s, already agreed by spend %d", ErrReplay, ag.seq, ag.client, p.id, p.agreement.seq))
		return
	}
	if !p.verified {
		p.agreement = ag
		s.account(ag.client).pendingSpend.add(ag.spend.Amount)
		return
	}
	s.settle(res, p, ag)
}

func (s *State) settle(res *Result, p *proposal, ag *agreement) {
	server, client := s.account(p.server), s.account(ag.client)
	server.pendingEarn.sub(p.earn.Amount)
	implied := ImpliedMultiplier(p.mHW, p.work, ag.spend.Micros, Forwards(p.earn), s.genesis.Trust.OverheadMicros)
	earned := s.credit(server, &credit{time: p.time, client: ag.client, earn: p.earn, mHW: p.mHW, implied: implied})
	client.spent.add(p.earn.Spend)
	server.settled.set(p.seq)
	p.agreement = ag // a later agreement naming p is a replay
	delete(s.proposals, p.id)
	res.Settled = append(res.Settled, Receipt{
		Proposal: p.id, Agreement: ag.id,
		Server: p.server, Client: ag.client,
		Earned: earned, Spent: p.earn.Spend,
	})
}

func (s *State) void(res *Result, ag *agreement, err error) {
	res.Void = append(res.Void, Void{Block: ag.id, Owner: ag.client, Seq: ag.seq, Err: err})
}

// Revalidate verifies the proposals whose model was unknown, asking the resolver
// again: call it after learning a model's manifest. Verified proposals with an
// agreement settle; proposals with wrong amounts are void, with their agreement.
func (s *State) Revalidate() Result {
	var todo []*proposal
	for _, p := range s.proposals {
		if !p.verified {
			todo = append(todo, p)
		}
	}
	slices.SortFunc(todo, func(x, y *proposal) int {
		if c := bytes.Compare(x.server[:], y.server[:]); c != 0 {
			return c
		}
		return cmp.Compare(x.seq, y.seq)
	})
	var res Result
	for _, p := range todo {
		c, ok := s.costOf(p.earn.Model)
		if !ok {
			continue
		}
		ag := p.agreement
		if ag != nil {
			s.account(ag.client).pendingSpend.sub(ag.spend.Amount)
		}
		if err := validateEarn(p.server, p.seq, p.earn, c, s.genesis); err != nil {
			delete(s.proposals, p.id)
			s.account(p.server).pendingEarn.sub(p.earn.Amount)
			res.Void = append(res.Void, Void{Block: p.id, Owner: p.server, Seq: p.seq, Err: err})
			if ag != nil {
				s.void(&res, ag, fmt.Errorf("%w: spend %d of %s agrees to void proposal %s", ErrUnlinked, ag.seq, ag.client, p.id))
			}
			continue
		}
		p.verified, p.work = true, WorkMicros(c, p.earn, p.mflops, p.mbps)
		if ag != nil {
			s.settle(&res, p, ag)
		}
	}
	return res
}

// ApplyFraudProof freezes the proof's owner after verifying it. Applying a proof
// for an owner already frozen changes nothing.
func (s *State) ApplyFraudProof(p *FraudProof) error {
	if err := p.Verify(); err != nil {
		return err
	}
	a := s.account(p.Owner())
	if a.fraud == nil {
		a.fraud = p
	}
	return nil
}

// FraudProof returns the proof that froze k, if k is frozen.
func (s *State) FraudProof(k Key) (*FraudProof, bool) {
	a := s.accounts[k]
	if a == nil || a.fraud == nil {
		return nil, false
	}
	return a.fraud, true
}

// Balance returns k's balance; a key the State has never seen has the starter
// allowance.
func (s *State) Balance(k Key) Balance {
	b := Balance{Allowance: s.genesis.StarterAllowance}
	if a := s.accounts[k]; a != nil {
		b.Earned, b.Spent = a.earned.uint64(), a.spent.uint64()
		b.PendingEarn, b.PendingSpend = a.pendingEarn.uint64(), a.pendingSpend.uint64()
		b.Frozen = a.fraud != nil
	}
	return b
}

// Head returns the head of k's chain, false when the State has no block of k.
func (s *State) Head(k Key) (Head, bool) {
	a := s.accounts[k]
	if a == nil || a.head == nil {
		return Head{}, false
	}
	return Head{Seq: a.head.Seq, ID: a.headID, Time: a.head.Time}, true
}

// Heads returns the head of every chain the State has applied blocks of: what a
// node advertises for sync.
func (s *State) Heads() map[Key]Head {
	out := make(map[Key]Head, len(s.accounts))
	for k := range s.accounts {
		if h, ok := s.Head(k); ok {
			out[k] = h
		}
	}
	return out
}

// Proposals returns the pending proposals where k is the server or the client,
// by server and sequence: a server uses it to see which of its clients have not
// agreed yet.
func (s *State) Proposals(k Key) []Proposal {
	var out []Proposal
	for _, p := range s.proposals {
		if p.server == k || p.earn.Client == k {
			e := *p.earn
			e.Model = slices.Clone(e.Model)
			out = append(out, Proposal{ID: p.id, Server: p.server, Seq: p.seq, Earn: e, Agreed: p.agreement != nil, Verified: p.verified})
		}
	}
	slices.SortFunc(out, func(x, y Proposal) int {
		if c := bytes.Compare(x.Server[:], y.Server[:]); c != 0 {
			return c
		}
		return cmp.Compare(x.Seq, y.Seq)
	})
	return out
}

// FormatGFT renders milli-GFT as GFT with three decimals, for messages such as
// "insufficient credits: have 12.500 GFT, need 40.000 GFT".
func FormatGFT(milli int64) string {
	sign := ""
	u := uint64(milli)
	if milli < 0 {
		sign, u = "-", -u
	}
	frac := strconv.FormatUint(u%1000, 10)
	for len(frac) < 3 {
		frac = "0" + frac
	}
	return sign + strconv.FormatUint(u/1000, 10) + "." + frac + " GFT"
}

// u128 is an exact running total: pending sums include unverified amounts of any
// size, and adding then subtracting them must give back what was there.
type u128 struct{ hi, lo uint64 }

func (x *u128) add(v uint64) {
	var c uint64
	x.lo, c = bits.Add64(x.lo, v, 0)
	x.hi += c
}

func (x *u128) sub(v uint64) {
	var b uint64
	x.lo, b = bits.Sub64(x.lo, v, 0)
	x.hi -= b
}

// uint64 saturates.
func (x u128) uint64() uint64 {
	if x.hi != 0 {
		return math.MaxUint64
	}
	return x.lo
}

// bitset is a set of small sequence numbers.
type bitset []uint64

func (b bitset) has(n uint64) bool {
	i := n / 64
	return i < uint64(len(b)) && b[i]&(1<<(n%64)) != 0
}

func (b *bitset) set(n uint64) {
	i := n / 64
	for uint64(len(*b)) <= i {
		*b = append(*b, 0)
	}
	(*b)[i] |= 1 << (n % 64)
}
