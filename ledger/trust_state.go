package ledger

import (
	"cmp"
	"math"
	"slices"
)

// What the State keeps for the trust rules (doc.go, "Trust"), and how a settled
// receipt's credit follows from them. Every input of a receipt's credit is
// either of the server's own chain before its proposal (the hardware claim in
// force), of the receipt itself (the client's observation), or a set that only
// grows as blocks arrive (audits of the server, other clients' observations):
// when one of those sets changes, the State recomputes the credits it affects,
// so that once every block is applied the balances are the same whatever the
// interleaving.

// hwState is a server's hardware claim as of its chain's head.
type hwState struct {
	claim Hardware
	// mult is the claim's multiplier within its tier (ClampClaim).
	mult uint32
	// limit is the multiplier in force before the last change, which the
	// server earns at (at most) until until.
	limit uint32
	until int64
}

// auditRec is an audit of an account by an auditor with standing.
type auditRec struct {
	time    int64
	auditor Key
	seq     uint64
	pass    bool
}

// credit is a settled receipt as its server's account keeps it: what its
// credit is computed from, and the credit: credited, at most the client's
// spend, counted in earned as it is, and the surplus beyond it, counted in its
// epoch's mint.
type credit struct {
	time   int64
	client Key
	earn   *Earn
	// mHW is the multiplier of the server's hardware in force at the proposal.
	mHW uint32
	// implied is the multiplier the client's observation supports.
	implied           uint32
	credited, surplus uint64
}

// epochBook is what a server's receipts of one evidence epoch share: the best
// observations of it, and the surplus each client's receipts would mint, of
// which minted is what counts (mint).
type epochBook struct {
	obs     best2
	surplus map[Key]uint64
	minted  uint64
}

// mint is what an epoch's surplus mints: all of it but the largest client's
// (the per-client rule, doc.go). Whichever client is a colluder's, dropping the
// largest leaves no more than the other clients' surplus: at most what the
// server's work for them earns by the formulas.
func (b *epochBook) mint() uint64 {
	var total u128
	var top uint64
	for _, v := range b.surplus {
		total.add(v)
		top = max(top, v)
	}
	total.sub(top)
	return total.uint64()
}

// book is a's epoch ep, made when missing.
func (a *account) book(ep int64) *epochBook {
	if a.epochs == nil {
		a.epochs = make(map[int64]*epochBook)
	}
	b := a.epochs[ep]
	if b == nil {
		b = &epochBook{surplus: make(map[Key]uint64)}
		a.epochs[ep] = b
	}
	return b
}

// observation is the best implied multiplier one client saw of a server.
type observation struct {
	client  Key
	implied uint32
}

// best2 are an epoch's observations of two distinct clients with the highest
// implied multipliers: enough to tell, for any client, whether another client
// observed the server in the epoch and the best it saw. It depends only on the
// set of observations, not on their order.
type best2 []observation

// add records o and reports whether the pair changed.
func (b *best2) add(o observation) bool {
	next := slices.Clone(*b)
	found := false
	for i := range next {
		if next[i].client == o.client {
			found = true
			next[i].implied = max(next[i].implied, o.implied)
		}
	}
	if !found {
		next = append(next, o)
	}
	slices.SortFunc(next, func(x, y observation) int {
		if c := cmp.Compare(y.implied, x.implied); c != 0 {
			return c
		}
		return slices.Compare(x.client[:], y.client[:])
	})
	if len(next) > 2 {
		next = next[:2]
	}
	if slices.Equal(next, *b) {
		return false
	}
	*b = next
	return true
}

// epoch is the evidence epoch of time t: ⌊t / W⌋.
func (s *State) epoch(t int64) int64 {
	w := s.genesis.Trust.WindowMillis
	e := t / w
	if t%w != 0 && t < 0 {
		e--
	}
	return e
}

// hardwareAt is the multiplier a server may earn at, at time t by its chain,
// and the figures its implied multiplier is computed with: its claim's
// (limited during a quarantine), or the unclaimed multiplier with the baseline
// figures.
func (s *State) hardwareAt(a *account, t int64) (mult uint32, mflops, mbps uint64) {
	tr := s.genesis.Trust
	if a == nil || a.hw == nil {
		return tr.UnclaimedMultiplier, tr.BaselineMFLOPS, tr.BaselineMBps
	}
	h := a.hw
	mult = h.mult
	if t < h.until {
		mult = min(mult, h.limit)
	}
	return mult, h.claim.MatmulMFLOPS, h.claim.BandwidthMBps
}

// applyHardware records a hardware claim appended at time t: a new device or
// another tier starts a quarantine during which the server earns at most the
// multiplier in force before; a server's first claim has nothing to be
// compared with and is bounded by what clients observe.
func (s *State) applyHardware(a *account, h *Hardware, t int64) {
	m := ClampClaim(s.genesis, h)
	prev := a.hw
	if prev == nil {
		a.hw = &hwState{claim: *h, mult: m}
		return
	}
	inForce, _, _ := s.hardwareAt(a, t)
	next := &hwState{claim: *h, mult: m, limit: prev.limit, until: prev.until}
	q := QuarantineMillis(s.genesis.Trust, prev.claim.Fingerprint != h.Fingerprint, int(h.Tier)-int(prev.claim.Tier))
	if q > 0 {
		next.limit = inForce
		next.until = max(prev.until, satAddInt(t, q))
	}
	a.hw = next
}

// applyAudit records an audit by auditor at time t: it counts only if the
// auditor has standing (an agreement to the subject earlier on its chain),
// and then the subject's credits in (t, t+W] are recomputed.
func (s *State) applyAudit(auditor Key, seq uint64, au *Audit, t int64) {
	if _, ok := s.account(auditor).paid[au.Subject]; !ok {
		return
	}
	subj := s.account(au.Subject)
	r := auditRec{time: t, auditor: auditor, seq: seq, pass: au.Passed()}
	i, _ := slices.BinarySearchFunc(subj.audits, r, func(x, y auditRec) int { return cmp.Compare(x.time, y.time) })
	subj.audits = slices.Insert(subj.audits, i, r)
	s.recompute(subj, t+1, satAddInt(t, s.genesis.Trust.WindowMillis))
}

// reliabilityAt is the reliability factor of a at time t: ReliabilityFactor
// over the audits of the window [t−W, t), each auditor counted once, by its
// latest verdict there.
func (s *State) reliabilityAt(a *account, t int64) uint32 {
	if a == nil || len(a.audits) == 0 {
		return 1000
	}
	from := satAddInt(t, -s.genesis.Trust.WindowMillis)
	lo, _ := slices.BinarySearchFunc(a.audits, from, func(x auditRec, t int64) int { return cmp.Compare(x.time, t) })
	latest := map[Key]auditRec{}
	for _, r := range a.audits[lo:] {
		if r.time >= t {
			break
		}
		if l, ok := latest[r.auditor]; !ok || r.time > l.time || r.time == l.time && r.seq > l.seq {
			latest[r.auditor] = r
		}
	}
	var pass, fail uint64
	for _, r := range latest {
		if r.pass {
			pass++
		} else {
			fail++
		}
	}
	return ReliabilityFactor(s.genesis.Trust, pass, fail)
}

// evidence is what clients other than c's observed of the server within the
// epochs next to c's: whether any did, and the best implied multiplier seen.
func (s *State) evidence(a *account, c *credit) (uint32, bool) {
	var best uint32
	found := false
	e := s.epoch(c.time)
	for _, ep := range []int64{e - 1, e, e + 1} {
		b := a.epochs[ep]
		if b == nil {
			continue
		}
		for _, o := range b.obs {
			if o.client != c.client {
				best, found = max(best, o.implied), true
			}
		}
	}
	return best, found
}

// creditOf is what a settled receipt credits its server (doc.go, "Trust"),
// as the part up to the client's spend and the surplus beyond it:
//
//	M = max(min(claimed, in force, implied, evidence), min(lowest tier, claimed))
//	R = min(claimed, reliability at the proposal)
//	amount = FLOPs · M · R            with evidence from another client
//	amount = min(FLOPs · M · R, spend) without
//
// The surplus is then subject to its epoch's per-client rule (mint).
func (s *State) creditOf(a *account, c *credit) (credited, surplus uint64) {
	e := c.earn
	m := min(e.Multiplier, c.mHW, c.implied)
	ev, independent := s.evidence(a, c)
	if independent {
		m = min(m, ev)
	}
	m = max(m, min(s.genesis.Tiers[0].Multiplier, e.Multiplier))
	r := min(e.Reliability, s.reliabilityAt(a, c.time))
	amount := Earned(e.FLOPs, m, r)
	credited = min(amount, e.Spend)
	if independent {
		surplus = amount - credited
	}
	return credited, surplus
}

// recredit computes c's credit (creditOf) and counts it in a's earnings:
// credited as it is, surplus through its epoch's mint.
func (s *State) recredit(a *account, c *credit) {
	credited, surplus := s.creditOf(a, c)
	a.earned.sub(c.credited)
	a.earned.add(credited)
	c.credited = credited
	if surplus == c.surplus {
		return
	}
	b := a.book(s.epoch(c.time))
	b.surplus[c.client] = b.surplus[c.client] - c.surplus + surplus
	c.surplus = surplus
	m := b.mint()
	a.earned.sub(b.minted)
	a.earned.add(m)
	b.minted = m
}

// credit records a settled receipt of server a and returns its credit before
// its epoch's cap: the receipt joins the server's credits and its observation
// the epoch's, and the credits whose evidence that changes are recomputed.
func (s *State) credit(a *account, c *credit) uint64 {
	ep := s.epoch(c.time)
	b := a.book(ep)
	changed := b.obs.add(observation{client: c.client, implied: c.implied})
	s.recredit(a, c)
	i, _ := slices.BinarySearchFunc(a.credits, c.time, func(x *credit, t int64) int { return cmp.Compare(x.time, t) })
	a.credits = slices.Insert(a.credits, i, c)
	if changed {
		w := s.genesis.Trust.WindowMillis
		start := satMulInt(ep, w)
		s.recompute(a, satAddInt(start, -w), satAddInt(satAddInt(start, 2*w), -1))
	}
	return c.credited + c.surplus
}

// recompute updates the credits of a's receipts with times in [from, to].
func (s *State) recompute(a *account, from, to int64) {
	lo, _ := slices.BinarySearchFunc(a.credits, from, func(x *credit, t int64) int { return cmp.Compare(x.time, t) })
	for _, c := range a.credits[lo:] {
		if c.time > to {
			break
		}
		s.recredit(a, c)
	}
}

func satAddInt(a, b int64) int64 {
	switch {
	case b > 0 && a > math.MaxInt64-b:
		return math.MaxInt64
	case b < 0 && a < math.MinInt64-b:
		return math.MinInt64
	}
	return a + b
}

func satMulInt(a, b int64) int64 {
	if a == 0 || b == 0 {
		return 0
	}
	p := a * b
	if p/b != a {
		if (a < 0) != (b < 0) {
			return math.MinInt64
		}
		return math.MaxInt64
	}
	return p
}

// Multiplier is the hardware multiplier (milli) k may propose at, at time at
// (Unix milliseconds): its latest claim's, limited during a quarantine to the
// one in force before, or the unclaimed multiplier. Receipts credit at most
// this; what clients observe may lower it per receipt. Servers propose with it,
// clients refuse proposals above it, and route planners weigh nodes by it.
func (s *State) Multiplier(k Key, at int64) uint32 {
	m, _, _ := s.hardwareAt(s.accounts[k], at)
	return m
}

// Reliability is k's reliability factor (milli) at time at by the audits this
// State has seen: what k's receipts of that time credit at most, and what a
// route planner scales k's share of the work by after a failed audit.
func (s *State) Reliability(k Key, at int64) uint32 {
	return s.reliabilityAt(s.accounts[k], at)
}

// Quarantine reports whether k is quarantined at time at (a changed device or
// tier), and until when: auditors challenge a quarantined node more often.
func (s *State) Quarantine(k Key, at int64) (until int64, ok bool) {
	a := s.accounts[k]
	if a == nil || a.hw == nil || at >= a.hw.until {
		return 0, false
	}
	return a.hw.until, true
}

// HardwareClaim is k's latest hardware claim, false when it has none.
func (s *State) HardwareClaim(k Key) (Hardware, bool) {
	a := s.accounts[k]
	if a == nil || a.hw == nil {
		return Hardware{}, false
	}
	return a.hw.claim, true
}
