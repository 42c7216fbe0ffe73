package pipeline

import (
	"math/rand/v2"
	"slices"
	"testing"
	"time"
)

// green sets a candidate's grid score.
func green(c Candidate, p float64) Candidate { c.PGrid = p; return c }

// TestPlanGrid: with equal performance the greener peer gets the work; a modest
// speed difference is paid for greenness, a large one is not (DESIGN.md §4: the cost
// is "adjusted by load and by P_grid").
func TestPlanGrid(t *testing.T) {
	at := func(peer string, first, last int, layerTime, latency time.Duration) Candidate {
		return Candidate{Peer: peer, First: first, Last: last, LayerTime: layerTime, Latency: latency}
	}
	for _, tc := range []struct {
		name   string
		cands  []Candidate
		layers int
		weight float64
		want   []Hop
	}{
		{
			name:   "equal performance: the greener peer, though its ID is larger",
			cands:  []Candidate{green(node("a", 0, 8, ms), 0.2), green(node("b", 0, 8, ms), 0.9)},
			layers: 8, weight: 0.5,
			want: []Hop{{"b", 0, 8}},
		},
		{
			name:   "equal performance, a small weight still decides",
			cands:  []Candidate{green(node("a", 0, 8, ms), 0.50), green(node("b", 0, 8, ms), 0.51)},
			layers: 8, weight: 0.05,
			want: []Hop{{"b", 0, 8}},
		},
		{
			name:   "equal performance and grid: the smaller peer ID",
			cands:  []Candidate{green(node("b", 0, 8, ms), 0.6), green(node("a", 0, 8, ms), 0.6)},
			layers: 8, weight: 0.5,
			want: []Hop{{"a", 0, 8}},
		},
		{
			name:   "weight 0 ignores the grid",
			cands:  []Candidate{green(node("a", 0, 8, ms), 0), green(node("b", 0, 8, ms), 1)},
			layers: 8, weight: 0,
			want: []Hop{{"a", 0, 8}},
		},
		{
			// b: (8·1.2+5)·1.05 = 15.3 ms; a: (8+5)·1.4 = 18.2 ms.
			name:   "20% slower and green beats fast and brown",
			cands:  []Candidate{green(node("a", 0, 8, ms), 0.2), green(node("b", 0, 8, 1200*time.Microsecond), 0.9)},
			layers: 8, weight: 0.5,
			want: []Hop{{"b", 0, 8}},
		},
		{
			// b: (16+5)·1.05 = 22 ms; a: 18.2 ms.
			name:   "twice as slow: performance dominates",
			cands:  []Candidate{green(node("a", 0, 8, ms), 0.2), green(node("b", 0, 8, 2*ms), 0.9)},
			layers: 8, weight: 0.5,
			want: []Hop{{"a", 0, 8}},
		},
		{
			// a: (8/(1−0.8) + 5)·1.05 = 47.3 ms; b: (8+5)·1.4 = 18.2 ms.
			name:   "a loaded green peer loses to an idle brown one",
			cands:  []Candidate{with(green(node("a", 0, 8, ms), 0.9), func(c *Candidate) { c.Load = 0.8 }), green(node("b", 0, 8, ms), 0.2)},
			layers: 8, weight: 0.5,
			want: []Hop{{"b", 0, 8}},
		},
		{
			// Across a WAN latency is most of a hop: b (8+40)·1.05 = 50.4 ms beats
			// a (8+30)·1.4 = 53.2 ms; weighing compute alone, a would win.
			name:   "a few ms further but green",
			cands:  []Candidate{green(at("a", 0, 8, ms, 30*ms), 0.2), green(at("b", 0, 8, ms, 40*ms), 0.9)},
			layers: 8, weight: 0.5,
			want: []Hop{{"b", 0, 8}},
		},
		{
			// b: (8+100)·1.05 = 113 ms; a: (8+10)·1.4 = 25 ms.
			name:   "far away and green loses to near and brown",
			cands:  []Candidate{green(at("a", 0, 8, ms, 10*ms), 0.2), green(at("b", 0, 8, ms, 100*ms), 0.9)},
			layers: 8, weight: 0.5,
			want: []Hop{{"a", 0, 8}},
		},
		{
			name: "two replicas of a span: the green one; the rest of the chain unchanged",
			cands: []Candidate{
				green(node("head", 0, 4, ms), 0.5),
				green(node("dirty", 4, 8, ms), 0.1),
				green(node("green", 4, 8, ms), 0.95),
			},
			layers: 8, weight: 0.5,
			want: []Hop{{"head", 0, 4}, {"green", 4, 8}},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := Plan(tc.cands, tc.layers, WithGridWeight(tc.weight))
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(got, tc.want) {
				t.Fatalf("got %v, want %v", got, tc.want)
			}
		})
	}
}

// TestPlanGreenerNeverLosesWork: raising the grid score of a peer the chain uses
// keeps it in the chain; greenness is never punished.
func TestPlanGreenerNeverLosesWork(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 5))
	checked := 0
	for range 2000 {
		layers := 1 + rng.IntN(8)
		cands := randomCandidates(rng, 1+rng.IntN(6), layers)
		hops, err := Plan(cands, layers, WithGridWeight(0.5))
		if err != nil {
			continue
		}
		p := hops[rng.IntN(len(hops))].Peer
		greener := slices.Clone(cands)
		for i := range greener {
			if greener[i].Peer == p {
				greener[i].PGrid += (1 - greener[i].PGrid) * rng.Float64()
			}
		}
		again, err := Plan(greener, layers, WithGridWeight(0.5))
		if err != nil {
			t.Fatal(err)
		}
		if !slices.ContainsFunc(again, func(h Hop) bool { return h.Peer == p }) {
			t.Fatalf("%s left the chain %v (now %v) when it became greener:\n%v\n%v", p, hops, again, cands, greener)
		}
		checked++
	}
	if checked < 1000 {
		t.Fatalf("only %d covered instances", checked)
	}
}
