package ledger

import (
	"errors"
	"math"
	"math/rand/v2"
	"reflect"
	"testing"
)

// stage is one server of the scenario's chain of three.
type stage struct {
	p                       *party
	first, last             uint16
	multiplier, reliability uint32
}

// window is one settlement window of the scenario's session.
type window struct{ from, to, tokens uint32 }

// TestStateScenario: one client generates through three servers for three
// windows (a 10-position prefill giving 1 token, 64 decode steps, and 6 more at
// the session's end), and a second client the same (each the independent
// evidence that lets the servers mint from the other: doc.go); the balances
// are computed by hand below.
func TestStateScenario(t *testing.T) {
	g := DefaultGenesis()
	c := bigCost() // 4 layers of 50M weights (f16, so P = 500), qDim 4096, 100M-weight head
	model := modelCID("big")
	st := NewState(g, resolver(map[string]Cost{string(model): c}))
	client := newParty(9)
	stages := []stage{
		{newParty(1), 0, 1, 1000, 1000},
		{newParty(2), 1, 3, 2000, 900},
		{newParty(3), 3, 4, 100, 1000},
	}
	// Server 2 claims the high consumer class, so it may earn at 2.0.
	mustApply(t, st, stages[1].p.claim(t, sampleHardware(4, 2000, 2)))
	witness := newParty(8)
	windows := []window{{0, 10, 1}, {10, 74, 64}, {74, 80, 6}}
	for i, client := range []*party{client, witness} {
		for w, win := range windows {
			for _, s := range stages {
				e := &Earn{
					Client: client.key, Session: [16]byte{42 + byte(i)}, Window: uint32(w), Model: model,
					First: s.first, Last: s.last, From: win.from, To: win.to, Tokens: win.tokens,
					Multiplier: s.multiplier, Reliability: s.reliability,
				}
				if s.last == 4 {
					e.Results = win.tokens
				}
				earn := s.p.propose(t, e, c, g)
				mustApply(t, st, earn)
				spend := client.agree(t, earn)
				res := mustApply(t, st, spend)
				if len(res.Settled) != 1 || res.Settled[0].Proposal != earn.ID() || res.Settled[0].Agreement != spend.ID() {
					t.Fatalf("window %d, server %s: %+v", w, s.p.key, res)
				}
			}
		}
	}
	// Server 1, layer [0,1), M 1.0, R 1.0:
	//   window 0: FLOPs 2·50M·10 + 4·4096·(1+…+10 = 55) = 1,000,901,120 → 1000 milli-GFT
	//   window 1: 2·50M·64 + 4·4096·(11+…+74 = 2720) = 6,444,564,480 → 6444
	//   window 2: 2·50M·6 + 4·4096·(75+…+80 = 465) = 607,618,560 → 607
	// Server 2, layers [1,3), M 2.0, R 0.9: twice server 1's FLOPs, × 1.8:
	//   2,001,802,240 → 3603; 12,889,128,960 → 23200; 1,215,237,120 → 2187
	// Server 3, layer [3,4), M 0.1, the head for every token:
	//   1,000,901,120 + 2·100M·1 = 1,200,901,120 → 120; 6,444,564,480 + 2·100M·64 → 1924;
	//   607,618,560 + 2·100M·6 = 1,807,618,560 → 180
	// The client, per token at P 0.5: 1e8·0.5/1e6 = 50 (server 1), 100 (server 2),
	// (1e8 + 2e8)·0.5/1e6 = 150 (server 3): 300 a token, 71 tokens: 21,300.
	// The witness runs the same session: everything twice, except that an
	// epoch's largest client's surplus (beyond its spend) does not mint, so
	// each server is credited both clients' spends and one client's surplus:
	//   server 1: 2·50·71 + (1000 + 6444 + 607 − 50·71) = 7100 + 4501
	//   server 2: 2·100·71 + (3603 + 23200 + 2187 − 100·71) = 14200 + 21890
	//   server 3: its amount is below its spend (150·71): no surplus, all of it twice.
	want := map[Key]Balance{
		stages[0].p.key: {Allowance: 10_000_000, Earned: 7100 + 4501},
		stages[1].p.key: {Allowance: 10_000_000, Earned: 14200 + 21890},
		stages[2].p.key: {Allowance: 10_000_000, Earned: 2 * (120 + 1924 + 180)},
		client.key:      {Allowance: 10_000_000, Spent: 21_300},
		witness.key:     {Allowance: 10_000_000, Spent: 21_300},
	}
	for k, w := range want {
		if got := st.Balance(k); got != w {
			t.Errorf("%s: %+v, want %+v", k, got, w)
		}
	}
	if got := st.Balance(client.key).Available(); got != 10_000_000-21_300 {
		t.Errorf("client available %d", got)
	}
	heads := st.Heads()
	if len(heads) != 5 || heads[client.key].Seq != 9 || heads[stages[1].p.key] != stages[1].p.head {
		t.Errorf("heads %v", heads)
	}
	if ps := st.Proposals(client.key); len(ps) != 0 {
		t.Errorf("pending %+v", ps)
	}
}

func mustApply(t testing.TB, st *State, b *Block) Result {
	t.Helper()
	res, err := st.Apply(b)
	if err != nil {
		t.Fatalf("Apply block %d of %s: %v", b.Seq, b.Owner, err)
	}
	return res
}

// applyAll applies blocks in order and gathers what they did.
func applyAll(t testing.TB, st *State, blocks ...*Block) Result {
	t.Helper()
	var res Result
	for _, b := range blocks {
		r := mustApply(t, st, b)
		res.Void = append(res.Void, r.Void...)
		res.Settled = append(res.Settled, r.Settled...)
	}
	return res
}

// TestStateRefuses: blocks that break a chain rule are not applied, each with its
// own error, and the chain continues from its head once the right block comes.
func TestStateRefuses(t *testing.T) {
	g := DefaultGenesis()
	server, client := newParty(1), newParty(2)
	var earns []*Block
	for w := range 4 {
		e := sampleEarn(client.key)
		e.Window = uint32(w)
		earns = append(earns, server.propose(t, e, bigCost(), g))
	}
	st := NewState(g, nil)
	mustApply(t, st, earns[0])
	mustApply(t, st, earns[1])

	forged := *earns[2]
	forged.Body = append([]byte(nil), forged.Body...)
	forged.Body[len(forged.Body)-9] ^= 0x10 // the Amount
	broken := *earns[2]
	broken.Prev = earns[0].ID()
	broken.Sign(server.priv)
	replayed := sampleEarn(client.key)
	replayed.Window = 1
	if err := replayed.Price(bigCost(), g); err != nil {
		t.Fatal(err)
	}
	replay, err := NewEarn(server.priv, earns[1].Head(), replayed, server.now)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		b    *Block
		want error
	}{
		{"forged signature", &forged, ErrBadSignature},
		{"gap", earns[3], ErrGap},
		{"reordered", earns[0], ErrOutOfOrder},
		{"duplicate", earns[1], ErrDuplicate},
		{"broken link", &broken, ErrBrokenLink},
		{"replayed window", replay, ErrReplay},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := st.Apply(tc.b); !errors.Is(err, tc.want) {
				t.Fatalf("Apply: %v, want %v", err, tc.want)
			}
			if h, _ := st.Head(server.key); h != earns[1].Head() {
				t.Fatalf("head moved to %+v", h)
			}
		})
	}
	mustApply(t, st, earns[2])
	mustApply(t, st, earns[3])
	if got := len(st.Proposals(server.key)); got != 4 {
		t.Errorf("%d pending proposals, want 4", got)
	}
}

// TestStateFork: a second block at a chain's head freezes its owner, and the
// proof the State keeps verifies anywhere; a fork of an earlier block, which
// only the store sees, freezes through ApplyFraudProof.
func TestStateFork(t *testing.T) {
	server, client, other := newParty(1), newParty(2), newParty(3)
	a, b := fork(t, server, client)
	st := NewState(DefaultGenesis(), nil)
	mustApply(t, st, a)
	if _, err := st.Apply(b); !errors.Is(err, ErrFork) {
		t.Fatalf("Apply of the fork: %v", err)
	}
	p, ok := st.FraudProof(server.key)
	if !ok || p.Verify() != nil {
		t.Fatal("no valid proof kept")
	}
	bal := st.Balance(server.key)
	if !bal.Frozen || bal.Available() != 0 {
		t.Fatalf("forked owner: %+v, available %d", bal, bal.Available())
	}
	enc := p.Encode()

	// Another node learns the fork from the proof alone.
	remote := NewState(DefaultGenesis(), nil)
	q, err := DecodeFraudProof(enc)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.ApplyFraudProof(q); err != nil {
		t.Fatal(err)
	}
	if err := remote.ApplyFraudProof(q); err != nil {
		t.Fatal("applying a proof twice:", err)
	}
	if !remote.Balance(server.key).Frozen || remote.Balance(other.key).Frozen {
		t.Fatal("the proof froze the wrong owner")
	}
	if err := remote.ApplyFraudProof(&FraudProof{A: a, B: a}); !errors.Is(err, ErrNotFork) {
		t.Errorf("a bogus proof: %v", err)
	}
	// A frozen owner's chain still applies: its receipts are its counterparties' history.
	mustApply(t, remote, a)
	spend := client.agree(t, a)
	if res := mustApply(t, remote, spend); len(res.Settled) != 0 {
		t.Errorf("settled a proposal of an unknown model: %+v", res)
	}
}

// TestStateVoid: receipts that break a receipt rule leave both halves on their
// chains and count for nothing, each reported with its own error.
func TestStateVoid(t *testing.T) {
	g := DefaultGenesis()
	c := bigCost()
	model := modelCID("big")
	newState := func() *State { return NewState(g, resolver(map[string]Cost{string(model): c})) }

	t.Run("wrong amount", func(t *testing.T) {
		server, client := newParty(1), newParty(2)
		e := sampleEarn(client.key)
		if err := e.Price(c, g); err != nil {
			t.Fatal(err)
		}
		e.Amount *= 2
		earn := server.appendRaw(KindEarn, e.Encode())
		spend := client.agree(t, earn)
		st := newState()
		res := mustApply(t, st, earn)
		assertVoid(t, res, earn, ErrAmount)
		res = mustApply(t, st, spend)
		assertVoid(t, res, spend, ErrUnlinked)
		assertUntouched(t, st, g, server, client)
	})
	t.Run("agreement spends less", func(t *testing.T) {
		server, client := newParty(1), newParty(2)
		earn := server.propose(t, sampleEarn(client.key), c, g)
		s, _ := SpendFor(earn)
		s.Amount--
		spend := client.appendRaw(KindSpend, s.Encode())
		st := newState()
		mustApply(t, st, earn)
		assertVoid(t, mustApply(t, st, spend), spend, ErrAmount)
		if st.Balance(client.key).Spent != 0 || st.Balance(server.key).Earned != 0 {
			t.Fatal("a void receipt counted")
		}
		if ps := st.Proposals(client.key); len(ps) != 1 || ps[0].Agreed {
			t.Fatalf("the proposal should still wait for a right agreement: %+v", ps)
		}
	})
	t.Run("half with no other half", func(t *testing.T) {
		server, client := newParty(1), newParty(2)
		real := server.propose(t, sampleEarn(client.key), c, g)
		ghost := client.appendRaw(KindSpend, (&Spend{Server: server.key, Proposal: BlockID{0xee}, Seq: 1, Amount: 50}).Encode())
		// Both orders: the agreement before the block it names (held, then
		// void), and after (void at once).
		for _, order := range [][]*Block{{ghost, real}, {real, ghost}} {
			st := newState()
			res := applyAll(t, st, order...)
			assertVoid(t, res, ghost, ErrUnlinked)
			if st.Balance(client.key).PendingSpend != 0 {
				t.Fatal("a void agreement is still pending")
			}
			if ps := st.Proposals(server.key); len(ps) != 1 || ps[0].Agreed {
				t.Fatalf("the proposal is a half with no other half, pending: %+v", ps)
			}
		}
	})
	t.Run("agreement by another client", func(t *testing.T) {
		server, client, thief := newParty(1), newParty(2), newParty(3)
		earn := server.propose(t, sampleEarn(client.key), c, g)
		s, _ := SpendFor(earn)
		spend := thief.appendRaw(KindSpend, s.Encode())
		st := newState()
		mustApply(t, st, earn)
		assertVoid(t, mustApply(t, st, spend), spend, ErrUnlinked)
	})
	t.Run("replayed agreement", func(t *testing.T) {
		server, client := newParty(1), newParty(2)
		earn := server.propose(t, sampleEarn(client.key), c, g)
		first := client.agree(t, earn)
		second := client.agree(t, earn)
		for _, order := range [][]*Block{{earn, first, second}, {first, second, earn}, {first, earn, second}} {
			st := newState()
			res := applyAll(t, st, order...)
			if len(res.Settled) != 1 || res.Settled[0].Agreement != first.ID() {
				t.Fatalf("settled %+v", res.Settled)
			}
			assertVoid(t, res, second, ErrReplay)
			if got := st.Balance(client.key); got.Spent != res.Settled[0].Spent || got.PendingSpend != 0 {
				t.Fatalf("client %+v after a replay", got)
			}
		}
	})
	t.Run("agreement before its proposal", func(t *testing.T) {
		server, client := newParty(1), newParty(2)
		earn := server.propose(t, sampleEarn(client.key), c, g)
		spend := client.agree(t, earn)
		st := newState()
		mustApply(t, st, spend)
		if got := st.Balance(client.key); got.PendingSpend != earn.mustEarn(t).Spend || got.Spent != 0 {
			t.Fatalf("held agreement: %+v", got)
		}
		if res := mustApply(t, st, earn); len(res.Settled) != 1 {
			t.Fatalf("the proposal did not settle the held agreement: %+v", res)
		}
		if got := st.Balance(client.key); got.PendingSpend != 0 || got.Spent != earn.mustEarn(t).Spend {
			t.Fatalf("client after settling: %+v", got)
		}
	})
}

func (b *Block) mustEarn(t *testing.T) *Earn {
	t.Helper()
	e, err := b.Earn()
	if err != nil {
		t.Fatal(err)
	}
	return e
}

func assertVoid(t *testing.T, res Result, b *Block, want error) {
	t.Helper()
	for _, v := range res.Void {
		if v.Block == b.ID() {
			if !errors.Is(v.Err, want) {
				t.Fatalf("block %d of %s void with %v, want %v", b.Seq, b.Owner, v.Err, want)
			}
			if v.Owner != b.Owner || v.Seq != b.Seq {
				t.Fatalf("void %+v names the wrong block", v)
			}
			return
		}
	}
	t.Fatalf("block %d of %s not void: %+v", b.Seq, b.Owner, res)
}

func assertUntouched(t *testing.T, st *State, g *Genesis, ps ...*party) {
	t.Helper()
	for _, p := range ps {
		if got := st.Balance(p.key); got != (Balance{Allowance: g.StarterAllowance}) {
			t.Errorf("%s: %+v", p.key, got)
		}
	}
}

// TestStateUnknownModel: a proposal for a model the resolver does not know is
// neither refused nor counted; Revalidate settles it once the model is known,
// or voids it if its amounts are wrong.
func TestStateUnknownModel(t *testing.T) {
	g := DefaultGenesis()
	c := bigCost()
	model := modelCID("big")
	known := map[string]Cost{}
	st := NewState(g, resolver(known))
	server, client := newParty(1), newParty(2)
	good := server.propose(t, sampleEarn(client.key), c, g)
	e := sampleEarn(client.key)
	e.Window = 1
	if err := e.Price(c, g); err != nil {
		t.Fatal(err)
	}
	e.FLOPs++ // wrong, but nobody can tell yet
	bad := server.appendRaw(KindEarn, e.Encode())
	goodSpend, badSpend := client.agree(t, good), client.agree(t, bad)
	for _, b := range []*Block{good, bad, goodSpend, badSpend} {
		if res := mustApply(t, st, b); len(res.Settled)+len(res.Void) != 0 {
			t.Fatalf("decided without the model: %+v", res)
		}
	}
	amount, spend := good.mustEarn(t).Amount, good.mustEarn(t).Spend
	if got := st.Balance(server.key); got.Earned != 0 || got.PendingEarn != amount+e.Amount {
		t.Fatalf("server before the model is known: %+v", got)
	}
	if got := st.Balance(client.key); got.Spent != 0 || got.PendingSpend != spend+e.Spend {
		t.Fatalf("client before the model is known: %+v", got)
	}
	if ps := st.Proposals(server.key); len(ps) != 2 || ps[0].Verified || !ps[0].Agreed {
		t.Fatalf("proposals %+v", ps)
	}
	if res := st.Revalidate(); len(res.Settled)+len(res.Void) != 0 {
		t.Fatalf("Revalidate without the model: %+v", res)
	}
	known[string(model)] = c
	res := st.Revalidate()
	if len(res.Settled) != 1 || res.Settled[0].Proposal != good.ID() {
		t.Fatalf("settled %+v", res.Settled)
	}
	assertVoid(t, res, bad, ErrAmount)
	assertVoid(t, res, badSpend, ErrUnlinked)
	// The only client gives no independent evidence: the server is credited at
	// most what it spent.
	if got := st.Balance(server.key); got != (Balance{Allowance: g.StarterAllowance, Earned: min(amount, spend)}) {
		t.Errorf("server after Revalidate: %+v", got)
	}
	if got := st.Balance(client.key); got != (Balance{Allowance: g.StarterAllowance, Spent: spend}) {
		t.Errorf("client after Revalidate: %+v", got)
	}
}

func TestBalanceAvailable(t *testing.T) {
	for _, tc := range []struct {
		b    Balance
		want int64
	}{
		{Balance{Allowance: 100, Earned: 50, Spent: 30}, 120},
		{Balance{Allowance: 100, Spent: 130}, -30},
		{Balance{Allowance: 100, Earned: 50, Frozen: true}, 0},
		{Balance{Allowance: math.MaxUint64, Earned: 1}, math.MaxInt64},
		{Balance{Allowance: math.MaxUint64 - 1}, math.MaxInt64},
		{Balance{Spent: math.MaxUint64}, -math.MaxInt64},
	} {
		if got := tc.b.Available(); got != tc.want {
			t.Errorf("%+v: %d, want %d", tc.b, got, tc.want)
		}
	}
	for milli, want := range map[int64]string{
		0: "0.000 GFT", 5: "0.005 GFT", 12_500: "12.500 GFT", -1_250: "-1.250 GFT",
		math.MinInt64: "-9223372036854775.808 GFT",
	} {
		if got := FormatGFT(milli); got != want {
			t.Errorf("FormatGFT(%d) = %q, want %q", milli, got, want)
		}
	}
}

// TestStateAnyInterleaving: the same chains applied in any interleaving give
// the same balances, heads and pending proposals, void receipts and held
// agreements included, whether a node knew every model from the start or learnt
// one at the end; with hardware claims changing (quarantines), audits arriving
// from other chains and clients' observations, under windows and quarantines
// short enough for the chains to span several, the credits, multipliers and
// reliability factors too, the per-client cap included.
func TestStateAnyInterleaving(t *testing.T) {
	g := DefaultGenesis()
	g.Trust.WindowMillis = 20_000
	g.Trust.QuarantineMillis = 7_000
	c := bigCost()
	model, late := modelCID("big"), modelCID("late")
	servers := []*party{newParty(1), newParty(2), newParty(3)}
	clients := []*party{newParty(10), newParty(11)}
	rng := rand.New(rand.NewPCG(1, 2))
	window := map[[2]Key]uint32{}
	everyone := append(append([]*party{}, servers...), clients...)
	for range 90 {
		s, cl := servers[rng.IntN(3)], clients[rng.IntN(2)]
		switch rng.IntN(10) {
		case 0: // a new claim: another tier, sometimes another device
			s.claim(t, sampleHardware(uint8(rng.IntN(8)), g.Tiers[rng.IntN(8)].Multiplier, byte(rng.IntN(2))))
		case 1, 2: // an audit of a server by anyone else, with or without standing
			auditor := everyone[rng.IntN(len(everyone))]
			if auditor != s {
				auditor.audit(t, s.key, rng.IntN(3) != 0)
			}
		}
		if rng.IntN(4) == 0 { // servers use each other too
			cl = servers[(rng.IntN(2)+1+indexOf(servers, s))%3]
		}
		e := sampleEarn(cl.key)
		e.Window = window[[2]Key{s.key, cl.key}]
		window[[2]Key{s.key, cl.key}]++
		e.First = uint16(rng.IntN(3))
		e.Last = e.First + 1 + uint16(rng.IntN(4-int(e.First)))
		e.From = uint32(rng.IntN(100))
		e.To = e.From + 1 + uint32(rng.IntN(64))
		e.Tokens = uint32(rng.IntN(int(e.To-e.From) + 1))
		if e.Last == 4 {
			e.Results = e.Tokens
		} else {
			e.Results = 0
		}
		e.Multiplier = []uint32{100, 1000, 8000}[rng.IntN(3)]
		if rng.IntN(5) == 0 {
			e.Model = late
		}
		var earn *Block
		switch rng.IntN(8) {
		case 0: // wrong amount
			if err := e.Price(c, g); err != nil {
				t.Fatal(err)
			}
			e.Amount++
			earn = s.appendRaw(KindEarn, e.Encode())
		default:
			earn = s.propose(t, e, c, g)
		}
		switch rng.IntN(8) {
		case 0: // never agreed
		case 1: // agreed twice
			cl.agree(t, earn)
			cl.agree(t, earn)
		case 2: // an agreement to nothing
			cl.appendRaw(KindSpend, (&Spend{Server: s.key, Proposal: BlockID{byte(rng.IntN(256)), 1}, Seq: earn.Seq + uint64(rng.IntN(3)), Amount: 1}).Encode())
		case 3, 4: // an observed agreement
			cl.agreeObserved(t, earn, 1+uint64(rng.IntN(400_000)))
		default:
			cl.agree(t, earn)
		}
	}
	// The last block of one server replays a window: refused in every order.
	e := sampleEarn(clients[0].key)
	e.Window = 0
	replay := servers[0].propose(t, e, c, g)

	var want *State
	voids := map[error]int{}
	for trial := range 50 {
		known := map[string]Cost{string(model): c}
		if trial%2 == 1 { // half the nodes know the late model from the start
			known[string(late)] = c
		}
		st := NewState(g, resolver(known))
		queues := [][]*Block{}
		for _, p := range append(append([]*party{}, servers...), clients...) {
			queues = append(queues, p.blocks)
		}
		order := rand.New(rand.NewPCG(uint64(trial), 7))
		for {
			var open []int
			for i, q := range queues {
				if len(q) > 0 {
					open = append(open, i)
				}
			}
			if len(open) == 0 {
				break
			}
			i := open[order.IntN(len(open))]
			b := queues[i][0]
			queues[i] = queues[i][1:]
			res, err := st.Apply(b)
			for _, v := range res.Void {
				for _, e := range []error{ErrAmount, ErrUnlinked, ErrReplay} {
					if errors.Is(v.Err, e) {
						voids[e]++
					}
				}
			}
			if b == replay {
				if !errors.Is(err, ErrReplay) {
					t.Fatalf("replayed window: %v", err)
				}
				continue
			}
			if err != nil {
				t.Fatalf("trial %d: block %d of %s: %v", trial, b.Seq, b.Owner, err)
			}
		}
		known[string(late)] = c
		st.Revalidate()
		if want == nil {
			want = st
			var earned, spent uint64
			for _, p := range append(append([]*party{}, servers...), clients...) {
				b := st.Balance(p.key)
				earned += b.Earned
				spent += b.Spent
			}
			if earned == 0 || spent == 0 {
				t.Fatal("the scenario settled nothing")
			}
			if voids[ErrAmount] == 0 || voids[ErrUnlinked] == 0 || voids[ErrReplay] == 0 {
				t.Fatalf("the scenario does not exercise every void: %v", voids)
			}
			// Every trust rule is exercised: credits below the proposals'
			// amounts, a quarantine, a reliability below 1.
			var cut, capped, quarantined, unreliable bool
			for _, s := range servers {
				a := st.accounts[s.key]
				for _, c := range a.credits {
					cut = cut || c.credited+c.surplus < c.earn.Amount
				}
				for _, b := range a.epochs {
					var total uint64
					for _, v := range b.surplus {
						total += v
					}
					capped = capped || b.minted < total
				}
				for at := int64(1_700_000_000_000); at < s.now; at += 1000 {
					_, q := st.Quarantine(s.key, at)
					quarantined = quarantined || q
					unreliable = unreliable || st.Reliability(s.key, at) < 1000
				}
			}
			if !cut || !capped || !quarantined || !unreliable {
				t.Fatalf("the scenario does not exercise the trust rules: cut %v, capped %v, quarantine %v, unreliable %v", cut, capped, quarantined, unreliable)
			}
			continue
		}
		for _, p := range everyone {
			if got, w := st.Balance(p.key), want.Balance(p.key); got != w {
				t.Fatalf("trial %d: %s: %+v, want %+v", trial, p.key, got, w)
			}
			for at := int64(1_700_000_000_000); at < p.now+30_000; at += 3_000 {
				if got, w := st.Reliability(p.key, at), want.Reliability(p.key, at); got != w {
					t.Fatalf("trial %d: %s: reliability at %d %d, want %d", trial, p.key, at, got, w)
				}
				if got, w := st.Multiplier(p.key, at), want.Multiplier(p.key, at); got != w {
					t.Fatalf("trial %d: %s: multiplier at %d %d, want %d", trial, p.key, at, got, w)
				}
			}
			if got, w := st.Proposals(p.key), want.Proposals(p.key); !reflect.DeepEqual(got, w) {
				t.Fatalf("trial %d: %s: pending %+v, want %+v", trial, p.key, got, w)
			}
		}
		if !reflect.DeepEqual(st.Heads(), want.Heads()) {
			t.Fatalf("trial %d: heads differ", trial)
		}
	}
}

func indexOf(ps []*party, p *party) int {
	for i, q := range ps {
		if q == p {
			return i
		}
	}
	return -1
}
