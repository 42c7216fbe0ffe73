package ledger

import (
	"fmt"
	"strings"
	"testing"

	"github.com/imece/imece/kernels"
)

// The self-dealing simulation (doc.go, "Threat model"): an honest server serving
// independent clients, and a self-dealing pair (two identities of one owner)
// playing several strategies, all through State. Every server really has the
// baseline class's hardware (what node/hardware's anchors expect of an RTX
// 3060); the pair lies about it, about the throughput it observes, and shapes
// its receipts to mint the most (long prompts, one token, 4-bit weights). For
// each, the gain — what the identities' balances grew by, earnings minus
// spending — per GFLOP its servers actually computed, and the bound it must
// not exceed: what the formulas pay honest serving per GFLOP (FLOPs × M × R
// of the true hardware), or, for a server lying about its claim, what that
// claim earns from independent clients alone (self-dealing must add nothing to
// a lie). Run with -v for the table.

// sevenB is a Llama-2-7B-shaped model in Q4_0: 32 layers of 202M weights (4.5
// bits each), attention width 4096, a 131M-weight head.
func sevenB() Cost {
	layer := Matrices{Weights: 202_375_168, Bytes: []TypeBytes{{kernels.Q4_0, 113_836_032}}}
	c := Cost{Layers: 32, QDim: 4096, PerLayer: make([]Matrices, 32),
		Head: Matrices{Weights: 131_072_000, Bytes: []TypeBytes{{kernels.Q4_0, 73_728_000}}}}
	for i := range c.PerLayer {
		c.PerLayer[i] = layer
	}
	return c
}

// The true hardware of every server, and its honest claim.
var (
	trueMFLOPS, trueMBps = uint64(15_180_000), uint64(288_000)
	netMicros            = uint64(2_000) // a LAN hop's network time per forward
)

func honestClaim() *Hardware { return sampleHardwareFigures(3, 1000, trueMFLOPS, trueMBps) }

// fakeTop claims the data-centre class's figures (an H100's expected ones).
func fakeTop() *Hardware { return sampleHardwareFigures(7, 8000, 593_640_000, 2_680_000) }

func sampleHardwareFigures(tier uint8, m uint32, mflops, mbps uint64) *Hardware {
	return &Hardware{Tier: tier, Multiplier: m, Fingerprint: [32]byte{tier}, MatmulMFLOPS: mflops,
		BandwidthMBps: mbps, LayerMicros: 1000, Backend: "sim"}
}

// trueMicros is how long a server of the true hardware takes for e, as an
// honest client observes it.
func trueMicros(c Cost, e *Earn) uint64 {
	return WorkMicros(c, e, trueMFLOPS, trueMBps) + Forwards(e)*netMicros
}

// sim plays receipts through one State and keeps the books of a strategy.
type sim struct {
	t     *testing.T
	g     *Genesis
	c     Cost
	model []byte
	st    *State
	// flops is what the servers of the strategy really computed, and
	// formula what the formulas price it at (the proposals' amounts).
	flops, formula uint64
	session        byte
}

func newSim(t *testing.T) *sim {
	g := DefaultGenesis()
	model := modelCID("7b")
	c := sevenB()
	return &sim{t: t, g: g, c: c, model: model, st: NewState(g, resolver(map[string]Cost{string(model): c}))}
}

// serve plays one settled window: server proposes at its claimed multiplier,
// client agrees with observed µs (0: the honest observation).
func (s *sim) serve(server, client *party, multiplier uint32, prompt, tokens uint32, observed uint64, counted bool) {
	s.t.Helper()
	s.session++
	e := &Earn{Client: client.key, Session: [16]byte{s.session, byte(len(server.blocks))}, Model: s.model,
		First: 0, Last: 32, From: 0, To: prompt + tokens, Results: tokens, Tokens: tokens,
		Multiplier: multiplier, Reliability: 1000}
	earn := server.propose(s.t, e, s.c, s.g)
	if observed == 0 {
		observed = trueMicros(s.c, e)
	}
	spend := client.agreeObserved(s.t, earn, observed)
	// Both sides' clocks move together.
	client.now, server.now = max(client.now, server.now), max(client.now, server.now)
	applyAll(s.t, s.st, earn, spend)
	if counted {
		s.flops += e.FLOPs
		s.formula += e.Amount
	}
}

// gain is what the identities' balances grew by, in milli-GFT.
func (s *sim) gain(ps ...*party) int64 {
	var g int64
	for _, p := range ps {
		b := s.st.Balance(p.key)
		g += int64(b.Earned) - int64(b.Spent)
	}
	return g
}

// perGFLOP is GFT gained per GFLOP computed.
func perGFLOP(gain int64, flops uint64) float64 {
	if flops == 0 {
		return 0
	}
	return float64(gain) / 1000 / (float64(flops) / 1e9)
}

type row struct {
	name    string
	gain    int64
	flops   uint64
	bounded float64 // what it must not exceed, GFT per GFLOP
}

func TestSelfDealing(t *testing.T) {
	var rows []row
	const rounds = 40

	// Honest: a baseline server, honestly claimed, serving five independent
	// clients ordinary sessions (200-token prompts, 64 tokens), observed truly.
	const independents = 5
	var formulaRate float64
	honest := func() row {
		s := newSim(t)
		h := newParty(1)
		mustApply(t, s.st, h.claim(t, honestClaim()))
		var clients []*party
		for i := range independents {
			clients = append(clients, newParty(byte(100+i)))
		}
		for i := range rounds {
			s.serve(h, clients[i%independents], 1000, 200, 64, 0, true)
		}
		formulaRate = perGFLOP(int64(s.formula), s.flops)
		return row{name: "honest: 5 independent clients", gain: s.gain(h), flops: s.flops, bounded: formulaRate}
	}()
	honestRate := perGFLOP(honest.gain, honest.flops)
	rows = append(rows, honest)

	pair := func(name string, play func(s *sim, a, b *party)) {
		s := newSim(t)
		a, b := newParty(10), newParty(11)
		play(s, a, b)
		rows = append(rows, row{name: name, gain: s.gain(a, b), flops: s.flops, bounded: formulaRate})
	}
	pair("ping-pong, honest claims and timings", func(s *sim, a, b *party) {
		mustApply(t, s.st, a.claim(t, honestClaim()))
		mustApply(t, s.st, b.claim(t, honestClaim()))
		for i := range rounds {
			if i%2 == 0 {
				s.serve(b, a, 1000, 200, 64, 0, true)
			} else {
				s.serve(a, b, 1000, 200, 64, 0, true)
			}
		}
	})
	pair("ping-pong, top-tier claims, 1 µs observed, 4k prompts", func(s *sim, a, b *party) {
		mustApply(t, s.st, a.claim(t, fakeTop()))
		mustApply(t, s.st, b.claim(t, fakeTop()))
		for i := range rounds {
			if i%2 == 0 {
				s.serve(b, a, 8000, 4000, 1, 1, true)
			} else {
				s.serve(a, b, 8000, 4000, 1, 1, true)
			}
		}
	})
	pair("one-way, fake top-tier claim", func(s *sim, a, b *party) {
		mustApply(t, s.st, b.claim(t, fakeTop()))
		for range rounds {
			s.serve(b, a, 8000, 4000, 1, 0, true)
		}
	})
	pair("one-way, fake throughput (1 µs)", func(s *sim, a, b *party) {
		mustApply(t, s.st, b.claim(t, honestClaim()))
		for range rounds {
			s.serve(b, a, 1000, 4000, 1, 1, true)
		}
	})
	// The pair's server also serves independent clients, which gives it
	// evidence: the colluder's receipts then mint, at most at what the
	// independent clients observed, and what the epoch mints leaves out its
	// largest client's surplus, whoever that is.
	mixed := func(name string, claim *Hardware, m uint32, prompt, tokens uint32, done bool) {
		s := newSim(t)
		a, b := newParty(10), newParty(11)
		mustApply(t, s.st, b.claim(t, claim))
		var clients []*party
		for i := range independents {
			clients = append(clients, newParty(byte(100+i)))
		}
		for i := range rounds {
			s.serve(b, clients[i%independents], m, 200, 64, 0, true)
			if i%independents == 0 {
				s.serve(b, a, m, prompt, tokens, 1, done)
			}
		}
		// The bound: what the formulas pay the same server's independent
		// work with the same claim, or honest serving's, the larger.
		alone := newSim(t)
		lone := newParty(11)
		mustApply(t, alone.st, lone.claim(t, claim))
		var others []*party
		for i := range independents {
			others = append(others, newParty(byte(110+i)))
		}
		for i := range rounds {
			alone.serve(lone, others[i%independents], m, 200, 64, 0, true)
		}
		bound := max(formulaRate, perGFLOP(alone.gain(lone), alone.flops))
		rows = append(rows, row{name: name, gain: s.gain(a, b), flops: s.flops, bounded: bound})
	}
	mixed("with independent clients, honest claim, 1 µs observed", honestClaim(), 1000, 4000, 1, true)
	mixed("with independent clients, fake top-tier claim, 1 µs", fakeTop(), 8000, 4000, 1, true)
	mixed("with independent clients, colluder's work never done", honestClaim(), 1000, 4000, 1, false)
	// The colluder's fake work sized like each independent client's: the
	// largest is then a tie, and one real client's surplus is what is left
	// out instead of the colluder's.
	mixed("…never done, as much as each independent client", honestClaim(), 1000, 200, 64, false)

	var out strings.Builder
	fmt.Fprintf(&out, "%-56s %12s %14s %12s %12s\n", "strategy", "GFLOP", "gain GFT", "GFT/GFLOP", "bound")
	for _, r := range rows {
		rate := perGFLOP(r.gain, r.flops)
		fmt.Fprintf(&out, "%-56s %12.0f %14.3f %12.4f %12.4f\n", r.name, float64(r.flops)/1e9, float64(r.gain)/1000, rate, r.bounded)
		if rate > r.bounded {
			t.Errorf("%s: %.4f GFT per GFLOP, more than %.4f", r.name, rate, r.bounded)
		}
	}
	t.Logf("gain per GFLOP computed (servers of the baseline class; bound: what the formulas pay honest serving, or the same claim's independent serving):\n%s", out.String())
	// Honest serving is paid by the formulas, less one client's surplus in
	// five: the price of the per-client rule.
	if floor := formulaRate * (independents - 1) / independents; honestRate < floor || formulaRate < 0.999 {
		t.Errorf("honest serving earns %.4f GFT per GFLOP, the formulas %.4f: want at least %.4f", honestRate, formulaRate, floor)
	}
}
