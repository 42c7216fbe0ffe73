package pipeline

import (
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"testing"
	"time"
)

const ms = time.Millisecond

// node is a candidate with a known latency, so tests spell out costs exactly.
func node(peer string, first, last int, layerTime time.Duration) Candidate {
	return Candidate{Peer: peer, First: first, Last: last, LayerTime: layerTime, Latency: 5 * ms}
}

func with(c Candidate, edit func(*Candidate)) Candidate {
	edit(&c)
	return c
}

func TestPlan(t *testing.T) {
	for _, tc := range []struct {
		name   string
		cands  []Candidate
		layers int
		opts   []PlanOption
		want   []Hop
	}{
		{
			name:   "one node serves the whole model",
			cands:  []Candidate{node("a", 0, 32, ms)},
			layers: 32,
			want:   []Hop{{"a", 0, 32}},
		},
		{
			name:   "a node serving more layers than the model",
			cands:  []Candidate{node("a", 0, 40, ms)},
			layers: 32,
			want:   []Hop{{"a", 0, 32}},
		},
		{
			name:   "overlapping spans at equal speed: fewer hops",
			cands:  []Candidate{node("a", 0, 5, ms), node("b", 3, 8, ms), node("c", 0, 8, ms)},
			layers: 8,
			want:   []Hop{{"c", 0, 8}},
		},
		{
			name: "equal speed and no latency: still fewer hops",
			cands: []Candidate{
				{Peer: "a", First: 0, Last: 5, LayerTime: ms},
				{Peer: "b", First: 3, Last: 8, LayerTime: ms},
				{Peer: "c", First: 0, Last: 8, LayerTime: ms},
			},
			layers: 8,
			opts:   []PlanOption{WithDefaultLatency(0)},
			want:   []Hop{{"c", 0, 8}},
		},
		{
			// c: 8·10+5 = 85 ms; a then b: 8·1 + 2·5 = 18 ms.
			name:   "fast nodes beat a slow one covering everything",
			cands:  []Candidate{node("a", 0, 4, ms), node("b", 4, 8, ms), node("c", 0, 8, 10*ms)},
			layers: 8,
			want:   []Hop{{"a", 0, 4}, {"b", 4, 8}},
		},
		{
			// c: 8·1.5+5 = 17 ms beats 18 ms: not fast enough to pay a hop.
			name:   "a speed difference too small to pay for a hop",
			cands:  []Candidate{node("a", 0, 4, ms), node("b", 4, 8, ms), node("c", 0, 8, 1500*time.Microsecond)},
			layers: 8,
			want:   []Hop{{"c", 0, 8}},
		},
		{
			// a is slow, b fast from layer 2: switch where b begins, using part of a.
			name:   "switch where a faster span begins",
			cands:  []Candidate{node("a", 0, 6, 10*ms), node("b", 2, 10, ms)},
			layers: 10,
			want:   []Hop{{"a", 0, 2}, {"b", 2, 10}},
		},
		{
			// b is slow: keep a as long as it lasts, then b for the rest.
			name:   "switch where a faster span ends",
			cands:  []Candidate{node("a", 0, 6, ms), node("b", 2, 10, 10*ms)},
			layers: 10,
			want:   []Hop{{"a", 0, 6}, {"b", 6, 10}},
		},
		{
			name: "a chain that needs sub-ranges of three overlapping spans",
			cands: []Candidate{
				node("a", 0, 4, 2*ms), node("b", 2, 8, ms), node("c", 6, 10, 2*ms),
			},
			layers: 10,
			want:   []Hop{{"a", 0, 2}, {"b", 2, 8}, {"c", 8, 10}},
		},
		{
			name:   "identical nodes: the smaller peer ID",
			cands:  []Candidate{node("b", 0, 8, ms), node("a", 0, 8, ms), node("c", 0, 8, ms)},
			layers: 8,
			want:   []Hop{{"a", 0, 8}},
		},
		{
			// a+d and b+c cost the same; a comes first.
			name: "equal two-hop chains: peer order from the first hop",
			cands: []Candidate{
				node("d", 4, 8, ms), node("c", 4, 8, ms), node("b", 0, 4, ms), node("a", 0, 4, ms),
			},
			layers: 8,
			want:   []Hop{{"a", 0, 4}, {"c", 4, 8}},
		},
		{
			name:   "excluded peer",
			cands:  []Candidate{node("a", 0, 8, ms), node("b", 0, 8, 2*ms)},
			layers: 8,
			opts:   []PlanOption{WithoutPeers("a")},
			want:   []Hop{{"b", 0, 8}},
		},
		{
			name:   "exclusions accumulate",
			cands:  []Candidate{node("a", 0, 8, ms), node("b", 0, 8, 2*ms), node("c", 0, 8, 3*ms)},
			layers: 8,
			opts:   []PlanOption{WithoutPeers("a"), WithoutPeers("b")},
			want:   []Hop{{"c", 0, 8}},
		},
		{
			// a at load 0.5 costs 8·2+5 = 21 ms, b 8·1.5+5 = 17 ms.
			name:   "load shifts the choice",
			cands:  []Candidate{with(node("a", 0, 8, ms), func(c *Candidate) { c.Load = 0.5 }), node("b", 0, 8, 1500*time.Microsecond)},
			layers: 8,
			want:   []Hop{{"b", 0, 8}},
		},
		{
			name:   "light load does not",
			cands:  []Candidate{with(node("a", 0, 8, ms), func(c *Candidate) { c.Load = 0.2 }), node("b", 0, 8, 1500*time.Microsecond)},
			layers: 8,
			want:   []Hop{{"a", 0, 8}},
		},
		{
			name:   "full load is dear but usable",
			cands:  []Candidate{with(node("a", 0, 8, ms), func(c *Candidate) { c.Load = 1 }), node("b", 0, 4, ms)},
			layers: 8,
			want:   []Hop{{"b", 0, 4}, {"a", 4, 8}},
		},
		{
			name:   "unknown latency is assumed high",
			cands:  []Candidate{with(node("a", 0, 8, ms), func(c *Candidate) { c.Latency = 0 }), node("b", 0, 8, 2*ms)},
			layers: 8,
			want:   []Hop{{"b", 0, 8}},
		},
		{
			name:   "unknown latency with a low default",
			cands:  []Candidate{with(node("a", 0, 8, ms), func(c *Candidate) { c.Latency = 0 }), node("b", 0, 8, 2*ms)},
			layers: 8,
			opts:   []PlanOption{WithDefaultLatency(ms)},
			want:   []Hop{{"a", 0, 8}},
		},
		{
			// Two hops cost 18 ms, one slow node 21 ms; 5 ms per hop more reverses it.
			name:   "hop overhead favours short chains",
			cands:  []Candidate{node("a", 0, 4, ms), node("b", 4, 8, ms), node("c", 0, 8, 2*ms)},
			layers: 8,
			opts:   []PlanOption{WithHopOverhead(5 * ms)},
			want:   []Hop{{"c", 0, 8}},
		},
		{
			name: "grid weight 0 ignores the grid",
			cands: []Candidate{
				with(node("a", 0, 8, ms), func(c *Candidate) { c.PGrid = 0 }),
				with(node("b", 0, 8, 1200*time.Microsecond), func(c *Candidate) { c.PGrid = 1 }),
			},
			layers: 8,
			want:   []Hop{{"a", 0, 8}},
		},
		{
			name: "grid weight prefers the greener peer",
			cands: []Candidate{
				with(node("a", 0, 8, ms), func(c *Candidate) { c.PGrid = 0 }),
				with(node("b", 0, 8, 1200*time.Microsecond), func(c *Candidate) { c.PGrid = 1 }),
			},
			layers: 8,
			opts:   []PlanOption{WithGridWeight(0.5)},
			want:   []Hop{{"b", 0, 8}},
		},
		{
			// a twice around a much faster b is cheaper than a alone.
			name:   "a peer may serve two ranges of one chain",
			cands:  []Candidate{node("a", 0, 10, 10*ms), node("b", 3, 7, 0)},
			layers: 10,
			want:   []Hop{{"a", 0, 3}, {"b", 3, 7}, {"a", 7, 10}},
		},
		{
			name:   "one peer advertising two ranges",
			cands:  []Candidate{node("a", 5, 10, ms), node("a", 0, 5, ms)},
			layers: 10,
			want:   []Hop{{"a", 0, 5}, {"a", 5, 10}},
		},
		{
			name: "malformed candidates are ignored",
			cands: []Candidate{
				node("a", 0, 8, -ms), with(node("b", 0, 8, ms), func(c *Candidate) { c.Latency = -ms }),
				node("c", 5, 2, 0), node("d", -3, 8, 3*ms),
				with(node("e", 0, 8, ms), func(c *Candidate) { c.Load, c.PGrid = math.NaN(), math.NaN() }),
			},
			layers: 8,
			want:   []Hop{{"d", 0, 8}},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := Plan(tc.cands, tc.layers, tc.opts...)
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(got, tc.want) {
				t.Fatalf("got %v, want %v", got, tc.want)
			}
			// Same chain whatever the order of the candidates.
			rng := rand.New(rand.NewPCG(1, 2))
			for range 10 {
				shuffled := slices.Clone(tc.cands)
				rng.Shuffle(len(shuffled), func(i, j int) { shuffled[i], shuffled[j] = shuffled[j], shuffled[i] })
				if again, _ := Plan(shuffled, tc.layers, tc.opts...); !slices.Equal(again, got) {
					t.Fatalf("shuffled candidates give %v, first %v", again, got)
				}
			}
		})
	}
}

func TestPlanUncovered(t *testing.T) {
	for _, tc := range []struct {
		name   string
		cands  []Candidate
		layers int
		opts   []PlanOption
		want   []LayerRange
		msg    string
	}{
		{
			name:   "no candidates",
			layers: 4,
			want:   []LayerRange{{0, 4}},
			msg:    "pipeline: layers [0, 4) are not served by any reachable peer",
		},
		{
			name:   "two gaps",
			cands:  []Candidate{node("a", 0, 3, ms), node("b", 5, 9, ms), node("c", 1, 2, ms)},
			layers: 10,
			want:   []LayerRange{{3, 5}, {9, 10}},
			msg:    "pipeline: layers [3, 5) and [9, 10) are not served by any reachable peer",
		},
		{
			name:   "three gaps",
			cands:  []Candidate{node("a", 1, 2, ms), node("b", 3, 4, ms)},
			layers: 5,
			want:   []LayerRange{{0, 1}, {2, 3}, {4, 5}},
			msg:    "pipeline: layers [0, 1), [2, 3) and [4, 5) are not served by any reachable peer",
		},
		{
			name:   "exclusion opens a gap",
			cands:  []Candidate{node("a", 0, 4, ms), node("b", 4, 8, ms), node("c", 2, 6, ms)},
			layers: 8,
			opts:   []PlanOption{WithoutPeers("b")},
			want:   []LayerRange{{6, 8}},
		},
		{
			name:   "malformed candidates cover nothing",
			cands:  []Candidate{node("a", 0, 4, -ms), node("b", 4, 4, ms)},
			layers: 4,
			want:   []LayerRange{{0, 4}},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			hops, err := Plan(tc.cands, tc.layers, tc.opts...)
			if !errors.Is(err, ErrUncovered) {
				t.Fatalf("got %v, %v; want ErrUncovered", hops, err)
			}
			var ue *UncoveredError
			if !errors.As(err, &ue) || !slices.Equal(ue.Gaps, tc.want) {
				t.Fatalf("gaps %v, want %v", ue, tc.want)
			}
			if tc.msg != "" && err.Error() != tc.msg {
				t.Fatalf("message %q, want %q", err, tc.msg)
			}
		})
	}
}

func TestPlanRejectsBadArguments(t *testing.T) {
	cands := []Candidate{node("a", 0, 8, ms)}
	for _, tc := range []struct {
		name   string
		layers int
		opts   []PlanOption
	}{
		{"no layers", 0, nil},
		{"too many layers", math.MaxUint16 + 1, nil},
		{"negative latency", 8, []PlanOption{WithDefaultLatency(-1)}},
		{"negative overhead", 8, []PlanOption{WithHopOverhead(-1)}},
		{"negative grid weight", 8, []PlanOption{WithGridWeight(-1)}},
		{"NaN grid weight", 8, []PlanOption{WithGridWeight(math.NaN())}},
		{"infinite grid weight", 8, []PlanOption{WithGridWeight(math.Inf(1))}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if hops, err := Plan(cands, tc.layers, tc.opts...); err == nil || errors.Is(err, ErrUncovered) {
				t.Fatalf("got %v, %v", hops, err)
			}
		})
	}
}

// TestPlanSaturatesAbsurdCosts: advertised times near the int64 limit neither
// overflow into cheap chains nor crash.
func TestPlanSaturatesAbsurdCosts(t *testing.T) {
	cands := []Candidate{
		{Peer: "huge", First: 0, Last: math.MaxUint16, LayerTime: math.MaxInt64, Latency: math.MaxInt64, Load: 1},
		{Peer: "sane", First: 0, Last: 100, LayerTime: ms},
		{Peer: "tail", First: 100, Last: math.MaxUint16, LayerTime: ms},
	}
	got, err := Plan(cands, math.MaxUint16, WithHopOverhead(math.MaxInt64))
	if err != nil {
		t.Fatal(err)
	}
	want := []Hop{{"sane", 0, 100}, {"tail", 100, math.MaxUint16}}
	if !slices.Equal(got, want) {
		t.Fatalf("got %v, want %v", got, want)
	}
}

// testCost is the cost model of Plan's documentation, written out again.
func testCost(c Candidate, a, b int, cfg planConfig) int64 {
	load := min(max(c.Load, 0), MaxPlanLoad)
	grid := 1 + cfg.gridWeight*(1-c.PGrid)
	perLayer := int64(math.Round(float64(c.LayerTime) / (1 - load) * grid))
	lat := c.Latency
	if lat == 0 {
		lat = cfg.defaultLatency
	}
	return int64(b-a)*perLayer + int64(math.Round(float64(lat)*grid)) + int64(cfg.hopOverhead)
}

// chainCost checks that hops is a contiguous chain over [0, layers) of candidate
// sub-ranges (peers being unique) and returns its cost.
func chainCost(t *testing.T, cands []Candidate, layers int, hops []Hop, cfg planConfig) int64 {
	t.Helper()
	pos, total := 0, int64(0)
	for _, h := range hops {
		i := slices.IndexFunc(cands, func(c Candidate) bool { return c.Peer == h.Peer })
		if i < 0 || h.First != pos || h.Last <= h.First || h.First < cands[i].First || h.Last > cands[i].Last {
			t.Fatalf("invalid chain %v at %v over %v", hops, h, cands)
		}
		if cfg.exclude[h.Peer] {
			t.Fatalf("chain %v uses excluded %s", hops, h.Peer)
		}
		total += testCost(cands[i], h.First, h.Last, cfg)
		pos = h.Last
	}
	if pos != layers {
		t.Fatalf("chain %v ends at %d, not %d", hops, pos, layers)
	}
	return total
}

// bruteForce enumerates every chain (each hop any sub-range of any candidate) and
// returns the least cost, the fewest hops at that cost, and whether any exists.
func bruteForce(cands []Candidate, layers int, cfg planConfig) (best int64, hops int, ok bool) {
	var walk func(pos int, cost int64, n int)
	walk = func(pos int, cost int64, n int) {
		if pos == layers {
			if !ok || cost < best || (cost == best && n < hops) {
				best, hops, ok = cost, n, true
			}
			return
		}
		for _, c := range cands {
			if cfg.exclude[c.Peer] || c.First > pos || c.Last <= pos {
				continue
			}
			for b := pos + 1; b <= min(c.Last, layers); b++ {
				walk(b, cost+testCost(c, pos, b, cfg), n+1)
			}
		}
	}
	walk(0, 0, 0)
	return best, hops, ok
}

func randomCandidates(rng *rand.Rand, n, layers int) []Candidate {
	cands := make([]Candidate, n)
	for i := range cands {
		first := rng.IntN(layers)
		cands[i] = Candidate{
			Peer:  fmt.Sprintf("p%02d", i),
			First: first,
			Last:  first + 1 + rng.IntN(layers-first),
			// Few distinct values, so that ties are common.
			LayerTime: time.Duration(1+rng.IntN(4)) * ms,
			Latency:   time.Duration(rng.IntN(3)) * 2 * ms,
			Load:      []float64{0, 0, 0.25, 0.5}[rng.IntN(4)],
			PGrid:     rng.Float64(),
		}
	}
	return cands
}

// TestPlanMatchesExhaustiveSearch: on small random instances, Plan finds a chain
// exactly when the candidates cover every layer, the chain is valid, and no chain
// is cheaper, nor as cheap with fewer hops.
func TestPlanMatchesExhaustiveSearch(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 11))
	const instances = 3000
	covered, multiHop := 0, 0
	for i := range instances {
		layers := 1 + rng.IntN(8)
		cands := randomCandidates(rng, rng.IntN(7), layers)
		cfg := planConfig{defaultLatency: time.Duration(rng.IntN(3)) * ms, hopOverhead: time.Duration(rng.IntN(2)) * ms}
		opts := []PlanOption{WithDefaultLatency(cfg.defaultLatency), WithHopOverhead(cfg.hopOverhead)}
		if rng.IntN(2) == 0 {
			cfg.gridWeight = 0.5
			opts = append(opts, WithGridWeight(cfg.gridWeight))
		}
		if len(cands) > 0 && rng.IntN(3) == 0 {
			p := cands[rng.IntN(len(cands))].Peer
			cfg.exclude = map[string]bool{p: true}
			opts = append(opts, WithoutPeers(p))
		}
		best, bestHops, exists := bruteForce(cands, layers, cfg)
		hops, err := Plan(cands, layers, opts...)
		if !exists {
			if !errors.Is(err, ErrUncovered) {
				t.Fatalf("instance %d: no chain exists but Plan gave %v, %v\n%+v", i, hops, err, cands)
			}
			continue
		}
		if err != nil {
			t.Fatalf("instance %d: a chain exists but Plan failed: %v\n%+v", i, err, cands)
		}
		covered++
		if len(hops) > 1 {
			multiHop++
		}
		if cost := chainCost(t, cands, layers, hops, cfg); cost != best || len(hops) != bestHops {
			t.Fatalf("instance %d: Plan's chain %v costs %d in %d hops, the best %d in %d\n%+v",
				i, hops, cost, len(hops), best, bestHops, cands)
		}
	}
	// The instances must exercise both outcomes, and chains of several hops.
	t.Logf("%d of %d instances covered, %d with several hops", covered, instances, multiHop)
	if covered < instances/5 || covered > instances*4/5 || multiHop < instances/10 {
		t.Error("instance generator too skewed")
	}
}

// TestPlanMatchesFullSearch compares Plan, which only switches peers at span
// boundaries, with a search over every layer boundary, on instances too large to
// enumerate.
func TestPlanMatchesFullSearch(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 5))
	for i := range 300 {
		layers := 1 + rng.IntN(60)
		cands := randomCandidates(rng, 1+rng.IntN(40), layers)
		cfg := planConfig{defaultLatency: DefaultPlanLatency}
		// Every layer boundary, every candidate: O(L²·C).
		const unreached = math.MaxInt64
		best := make([]int64, layers+1)
		for j := range best {
			best[j] = unreached
		}
		best[0] = 0
		for a := range layers {
			if best[a] == unreached {
				continue
			}
			for _, c := range cands {
				for b := a + 1; c.First <= a && b <= min(c.Last, layers); b++ {
					best[b] = min(best[b], best[a]+testCost(c, a, b, cfg))
				}
			}
		}
		hops, err := Plan(cands, layers)
		if best[layers] == unreached {
			if !errors.Is(err, ErrUncovered) {
				t.Fatalf("instance %d: got %v, %v, want ErrUncovered", i, hops, err)
			}
			continue
		}
		if err != nil {
			t.Fatalf("instance %d: %v", i, err)
		}
		if cost := chainCost(t, cands, layers, hops, cfg); cost != best[layers] {
			t.Fatalf("instance %d: Plan's chain costs %d, best %d", i, cost, best[layers])
		}
		rng.Shuffle(len(cands), func(i, j int) { cands[i], cands[j] = cands[j], cands[i] })
		if again, _ := Plan(cands, layers); !slices.Equal(again, hops) {
			t.Fatalf("instance %d: shuffled candidates give %v, first %v", i, again, hops)
		}
	}
}

// BenchmarkPlan: a large mesh, 500 peers with spans of 4 to 40 of 80 layers.
func BenchmarkPlan(b *testing.B) {
	for _, n := range []int{50, 500} {
		b.Run(fmt.Sprint(n), func(b *testing.B) {
			const layers = 80
			rng := rand.New(rand.NewPCG(1, 1))
			cands := make([]Candidate, n)
			for i := range cands {
				first := rng.IntN(layers - 4)
				cands[i] = Candidate{
					Peer:      fmt.Sprintf("12D3KooW%040d", i),
					First:     first,
					Last:      min(layers, first+4+rng.IntN(37)),
					LayerTime: time.Duration(500+rng.IntN(5000)) * time.Microsecond,
					Latency:   time.Duration(rng.IntN(100)) * ms,
					Load:      rng.Float64(),
					PGrid:     rng.Float64(),
				}
			}
			b.ReportAllocs()
			for b.Loop() {
				if _, err := Plan(cands, layers, WithGridWeight(0.2)); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
