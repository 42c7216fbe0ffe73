package pipeline

import (
	"cmp"
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"
	"time"
)

// Candidate is a peer that could run part of a chain, as the client sees it from the
// peer's record and its own measurements. Plan reads it and nothing else, which
// keeps route planning pure: no libp2p, no clock.
type Candidate struct {
	// Peer identifies the peer; string(peer.ID) keeps the planner free of libp2p.
	// Ties between equally good chains go to the smaller Peer, byte by byte.
	Peer string
	// First and Last are the layers [First, Last) the peer holds; it can run any
	// sub-range of them.
	First, Last int
	// LayerTime is the expected time for one layer and one token on the peer,
	// from its advertised throughput.
	LayerTime time.Duration
	// Latency is the expected network latency to reach the peer; 0 means unknown,
	// and the planner assumes the default (WithDefaultLatency).
	Latency time.Duration
	// Load is the peer's current load in [0, 1]; compute on a loaded peer is
	// slower by 1/(1−Load), as with processor sharing, Load capped at MaxPlanLoad.
	Load float64
	// PGrid is the peer's grid score in [0, 1], higher being greener; see
	// WithGridWeight.
	PGrid float64
}

// Hop is one stage of a chain: Peer runs layers [First, Last).
type Hop struct {
	Peer        string
	First, Last int
}

// LayerRange is the layers [First, Last).
type LayerRange struct{ First, Last int }

// String writes the range as layers are written in messages: [First, Last).
func (r LayerRange) String() string { return fmt.Sprintf("[%d, %d)", r.First, r.Last) }

// ErrUncovered means no chain exists: some layers are served by no candidate left
// after exclusions. Plan returns it inside an *UncoveredError that says which.
var ErrUncovered = errors.New("pipeline: layers not served by any reachable peer")

// UncoveredError lists the layers no candidate serves, so the client can report
// them (and a node operator can see what to serve with --layers).
type UncoveredError struct {
	// Gaps are the maximal uncovered ranges, in order.
	Gaps []LayerRange
}

// Error names every gap, as in "layers [3, 5) and [9, 10) are not served ...".
func (e *UncoveredError) Error() string {
	var b strings.Builder
	b.WriteString("pipeline: layers ")
	for i, g := range e.Gaps {
		switch {
		case i == 0:
		case i == len(e.Gaps)-1:
			b.WriteString(" and ")
		default:
			b.WriteString(", ")
		}
		b.WriteString(g.String())
	}
	b.WriteString(" are not served by any reachable peer")
	return b.String()
}

// Unwrap makes errors.Is(err, ErrUncovered) hold.
func (e *UncoveredError) Unwrap() error { return ErrUncovered }

// MaxPlanLoad caps a candidate's Load in the cost: a fully loaded peer costs
// 1/(1−MaxPlanLoad) = 20 times its unloaded compute, dear but still usable when
// nothing else covers its layers.
const MaxPlanLoad = 0.95

// DefaultPlanLatency is the latency assumed for a candidate whose Latency is
// unknown: a typical wide-area round trip, so measured nearby peers win over
// unmeasured ones.
const DefaultPlanLatency = 50 * time.Millisecond

// maxCostPart bounds each part of a cost (per-layer time, latency, overhead), about
// 18 minutes, so that absurd advertised values saturate instead of overflowing:
// 65535 layers × 2⁴⁰ plus 65535 hops × 2⁴¹ stays below 2⁶³.
const maxCostPart = 1 << 40

// PlanOption adjusts Plan.
type PlanOption func(*planConfig) error

type planConfig struct {
	exclude        map[string]bool
	defaultLatency time.Duration
	hopOverhead    time.Duration
	gridWeight     float64
}

// WithoutPeers leaves the given peers out of the chain: after a failover, "not
// these". It may be given more than once.
func WithoutPeers(peers ...string) PlanOption {
	return func(c *planConfig) error {
		if c.exclude == nil {
			c.exclude = make(map[string]bool, len(peers))
		}
		for _, p := range peers {
			c.exclude[p] = true
		}
		return nil
	}
}

// WithDefaultLatency sets the latency assumed for candidates whose Latency is 0
// (default DefaultPlanLatency).
func WithDefaultLatency(d time.Duration) PlanOption {
	return func(c *planConfig) error {
		if d < 0 {
			return fmt.Errorf("pipeline: negative default latency %v", d)
		}
		c.defaultLatency = d
		return nil
	}
}

// WithHopOverhead adds a fixed cost to every hop (framing, scheduling, the session
// on one more stage), beyond its latency; default 0. A larger value trades compute
// speed for shorter chains.
func WithHopOverhead(d time.Duration) PlanOption {
	return func(c *planConfig) error {
		if d < 0 {
			return fmt.Errorf("pipeline: negative hop overhead %v", d)
		}
		c.hopOverhead = d
		return nil
	}
}

// WithGridWeight makes hops on less green peers dearer: a hop's time on a
// candidate (its compute, load included, plus its latency) is multiplied by
// 1 + w·(1 − PGrid). The default, 0, ignores the grid.
//
// w is the price of greenness in time: a hop on a fully green peer (PGrid 1) may
// take up to 1 + w times as long as on a fully brown one (PGrid 0) and still win.
// With equal performance any difference in PGrid decides; when performance
// differs by more than the ratio of the two peers' factors, performance does.
// With w = 0.5 and the typical spread of P_grid (0.2 to 0.9), a green peer wins
// while it is less than a third slower. node/grid.PlanWeight gives the default.
//
// The factor covers the latency too, not only the compute, because across a wide
// area network latency is most of a hop's time: weighing compute alone would let
// a few milliseconds of distance outweigh any grid. The client's hop overhead
// (WithHopOverhead) is not weighed: it is spent on the client, whatever the peer.
func WithGridWeight(w float64) PlanOption {
	return func(c *planConfig) error {
		if w < 0 || math.IsNaN(w) || math.IsInf(w, 0) {
			return fmt.Errorf("pipeline: grid weight %v, want a finite value ≥ 0", w)
		}
		c.gridWeight = w
		return nil
	}
}

// Plan finds the cheapest chain of hops that runs layers [0, layers) in order, or
// an *UncoveredError when no chain exists. A chain exists exactly when the
// candidates' ranges cover every layer, and Plan then always finds one.
//
// Running layers [a, b) on candidate c costs
//
//	((b−a) · LayerTime · 1/(1−Load) + Latency) · (1 + gridWeight·(1−PGrid)) + hop overhead
//
// with the per-layer part rounded to a whole nanosecond once per candidate, so that
// splitting a range on one peer never looks cheaper than running it whole. Among
// chains of equal cost Plan picks the one with the fewest hops, then the smallest
// sequence of hops compared by peer ID (then candidate range, then where the hop
// starts): the same input gives the same chain whatever the candidates' order. Candidates with negative times or empty
// ranges (after clipping to [0, layers)) are ignored as malformed. A peer may
// appear twice in a chain (for two ranges) when that is cheapest; each hop is its
// own session on its own stream.
//
// The search is a shortest path over layer boundaries. Since a hop's cost is
// linear in its length, some cheapest chain switches peers only where a hop's
// peer runs out of layers (its Last) or where the next peer's range begins (its
// First): moving a switch point between two such places changes the cost
// linearly, so one end of the interval is no worse. Plan therefore visits only
// those boundaries, O(B²·C) for B distinct boundaries and C candidates.
func Plan(cands []Candidate, layers int, opts ...PlanOption) ([]Hop, error) {
	if layers < 1 || layers > math.MaxUint16 {
		return nil, fmt.Errorf("pipeline: plan for %d layers, want 1 to %d", layers, math.MaxUint16)
	}
	cfg := planConfig{defaultLatency: DefaultPlanLatency}
	for _, o := range opts {
		if err := o(&cfg); err != nil {
			return nil, err
		}
	}
	spans := prepareSpans(cands, layers, &cfg)
	if gaps := uncovered(spans, layers); len(gaps) > 0 {
		return nil, &UncoveredError{Gaps: gaps}
	}
	return shortestChain(spans, layers)
}

// span is a usable candidate with its costs worked out.
type span struct {
	peer        string
	first, last int   // clipped to [0, layers)
	perLayer    int64 // nanoseconds of compute per layer, load and grid included
	fixed       int64 // nanoseconds per hop: latency and overhead
	fp, lp      int   // indices of first and last among the boundaries
}

// cost is the cost of running [a, b) on s.
func (s *span) cost(a, b int) int64 { return int64(b-a)*s.perLayer + s.fixed }

func prepareSpans(cands []Candidate, layers int, cfg *planConfig) []span {
	spans := make([]span, 0, len(cands))
	overhead := min(int64(cfg.hopOverhead), maxCostPart)
	for _, c := range cands {
		first, last := max(c.First, 0), min(c.Last, layers)
		if first >= last || c.LayerTime < 0 || c.Latency < 0 || cfg.exclude[c.Peer] {
			continue
		}
		load := c.Load
		if math.IsNaN(load) || load > MaxPlanLoad {
			load = MaxPlanLoad // unknown or saturated: assume the worst we allow
		}
		load = max(load, 0)
		green := c.PGrid
		if math.IsNaN(green) {
			green = 0
		}
		green = min(max(green, 0), 1)
		grid := 1 + cfg.gridWeight*(1-green)
		perLayer := float64(c.LayerTime) / (1 - load) * grid
		latency := c.Latency
		if latency == 0 {
			latency = cfg.defaultLatency
		}
		spans = append(spans, span{
			peer:     c.Peer,
			first:    first,
			last:     last,
			perLayer: int64(math.Round(min(perLayer, maxCostPart))),
			fixed:    int64(math.Round(min(float64(latency)*grid, maxCostPart))) + overhead,
		})
	}
	slices.SortFunc(spans, func(a, b span) int {
		return cmp.Or(
			strings.Compare(a.peer, b.peer),
			cmp.Compare(a.first, b.first),
			cmp.Compare(a.last, b.last),
			cmp.Compare(a.perLayer, b.perLayer),
			cmp.Compare(a.fixed, b.fixed),
		)
	})
	return spans
}

// uncovered returns the maximal ranges of [0, layers) no span covers.
func uncovered(spans []span, layers int) []LayerRange {
	byFirst := slices.Clone(spans)
	slices.SortFunc(byFirst, func(a, b span) int { return cmp.Compare(a.first, b.first) })
	var gaps []LayerRange
	reach := 0 // [0, reach) is covered or already reported
	for _, s := range byFirst {
		if s.first > reach {
			gaps = append(gaps, LayerRange{reach, s.first})
		}
		reach = max(reach, s.last)
	}
	if reach < layers {
		gaps = append(gaps, LayerRange{reach, layers})
	}
	return gaps
}

// step is the best known way to reach a boundary: its cost, its hop count, and its
// last hop (span index and the boundary it starts from).
type step struct {
	cost    int64
	hops    int
	span    int
	from    int
	reached bool
}

// chainSearch is the state of one shortest-path search over boundaries.
type chainSearch struct {
	spans  []span
	bounds []int  // distinct layer boundaries, ascending
	starts []bool // bounds[i] is some span's First: a place a next hop may start
	best   []step
	pa, pb []step // scratch for comparing two paths
}

func shortestChain(spans []span, layers int) ([]Hop, error) {
	bounds := make([]int, 0, 2*len(spans)+2)
	bounds = append(bounds, 0, layers)
	for _, s := range spans {
		bounds = append(bounds, s.first, s.last)
	}
	slices.Sort(bounds)
	bounds = slices.Compact(bounds)
	at := func(pos int) int { i, _ := slices.BinarySearch(bounds, pos); return i }
	cs := chainSearch{
		spans:  spans,
		bounds: bounds,
		starts: make([]bool, len(bounds)),
		best:   make([]step, len(bounds)),
	}
	for i := range spans {
		s := &spans[i]
		s.fp, s.lp = at(s.first), at(s.last)
		cs.starts[s.fp] = true
	}
	cs.best[0] = step{reached: true, span: -1}
	for k := range bounds {
		if !cs.best[k].reached {
			continue
		}
		for si := range spans {
			s := &spans[si]
			if s.fp > k || s.lp <= k {
				continue
			}
			for j := k + 1; j < s.lp; j++ {
				if cs.starts[j] {
					cs.relax(k, j, si)
				}
			}
			cs.relax(k, s.lp, si)
		}
	}
	end := len(bounds) - 1
	if !cs.best[end].reached {
		// uncovered found no gap, so a chain exists and the search must reach it.
		return nil, fmt.Errorf("pipeline: planner found no chain over covered layers (a bug)")
	}
	hops := make([]Hop, cs.best[end].hops)
	for j, i := end, len(hops)-1; i >= 0; i-- {
		st := cs.best[j]
		hops[i] = Hop{Peer: spans[st.span].peer, First: bounds[st.from], Last: bounds[j]}
		j = st.from
	}
	return hops, nil
}

// relax offers the path best[k] + (span si from bounds[k] to bounds[j]) to j.
func (cs *chainSearch) relax(k, j, si int) {
	prev := cs.best[k]
	cand := step{
		cost:    prev.cost + cs.spans[si].cost(cs.bounds[k], cs.bounds[j]),
		hops:    prev.hops + 1,
		span:    si,
		from:    k,
		reached: true,
	}
	if cs.better(cand, cs.best[j]) {
		cs.best[j] = cand
	}
}

// better orders two paths to the same boundary by cost, then hop count, then their
// hop sequences compared from the first hop by (span, start boundary), spans being
// in Peer order. The order is total and survives extending both paths by the same
// hop, so the search keeps the best path under it at every boundary.
func (cs *chainSearch) better(a, b step) bool {
	if !b.reached {
		return true
	}
	if a.cost != b.cost {
		return a.cost < b.cost
	}
	if a.hops != b.hops {
		return a.hops < b.hops
	}
	if a.from == b.from {
		return a.span < b.span
	}
	// Equal hop counts, different last boundaries: the prefixes differ, and
	// have the same length, so compare them from the first hop.
	cs.pa = cs.path(cs.pa[:0], a)
	cs.pb = cs.path(cs.pb[:0], b)
	for i := len(cs.pa) - 1; i >= 0; i-- {
		x, y := cs.pa[i], cs.pb[i]
		if x.span != y.span {
			return x.span < y.span
		}
		if x.from != y.from {
			return x.from < y.from
		}
	}
	return false
}

// path appends the steps of the path ending with st, last hop first.
func (cs *chainSearch) path(dst []step, st step) []step {
	for st.span >= 0 {
		dst = append(dst, st)
		st = cs.best[st.from]
	}
	return dst
}
