package grid

import (
	"context"
	"fmt"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/imece/imece/pipeline"
)

// The simulated day (issue 5: "a 24-hour simulated run over three zones shows
// the share of FLOPs following the clean hours"), at the planner's level: the
// real Signal over the three SimZones, the real planner, and a workload of
// overlapping sessions whose load feeds back into both the planner's cost and
// the advertised P_grid. testnet/grid_test.go runs the same day through real
// nodes.
const (
	dayLayers    = 32                   // a 7B-class model
	dayLayerTime = 2 * time.Millisecond // per layer and token on every volunteer
	dayLatency   = 40 * time.Millisecond
	dayCapacity  = 8               // sessions per volunteer
	dayArrival   = 2 * time.Minute // a new session every 2 minutes
	dayTokens    = 256             // positions per session
	daySeed      = 7
)

// workload is how long sessions last: the network's business.
type workload struct {
	name     string
	duration time.Duration
}

var (
	// quiet: one session at a time; nothing but the grid separates the zones.
	quiet = workload{"quiet (one session at a time)", dayArrival}
	// busy: five at a time, over six volunteers of eight slots; the load
	// spreads the work and the grid tilts it.
	busy = workload{"busy (five sessions at a time)", 5 * dayArrival}
)

// dayResult is what a simulated day measured, per UTC hour and zone.
type dayResult struct {
	zones  []string
	pgrid  [24][]uint16  // idle P_grid of each zone
	carbon [24][]float64 // carbon intensity of each zone
	flops  [24][]float64 // layer-positions served by each zone
}

// share is zone z's share of hour h's work.
func (d *dayResult) share(h, z int) float64 {
	var total float64
	for _, f := range d.flops[h] {
		total += f
	}
	if total == 0 {
		return 0
	}
	return d.flops[h][z] / total
}

// simulateDay routes a day of sessions over two volunteers per zone (layers
// [0, 16) and [16, 32)), planning each session with grid weight w.
func simulateDay(t testing.TB, w float64, load workload) *dayResult {
	t.Helper()
	ctx := context.Background()
	zones := SimZones()
	type volunteer struct {
		peer   string
		zone   int
		first  int
		last   int
		sig    *Signal
		ending []time.Time // when each open session ends
	}
	var vols []*volunteer
	res := &dayResult{}
	for zi, z := range zones {
		res.zones = append(res.zones, z.Name)
		src, err := NewSimulated(z, daySeed)
		if err != nil {
			t.Fatal(err)
		}
		sig, err := NewSignal(src, defaultWeights)
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range [][2]int{{0, dayLayers / 2}, {dayLayers / 2, dayLayers}} {
			vols = append(vols, &volunteer{peer: fmt.Sprintf("%s/%d", z.Name, r[0]), zone: zi, first: r[0], last: r[1], sig: sig})
		}
	}
	for h := range 24 {
		res.pgrid[h] = make([]uint16, len(zones))
		res.carbon[h] = make([]float64, len(zones))
		res.flops[h] = make([]float64, len(zones))
		for zi := range zones {
			v := vols[2*zi].sig.At(ctx, day1(h, 30), 0)
			res.pgrid[h][zi], res.carbon[h][zi] = v.PGrid, v.Reading.Carbon
		}
	}
	start := day1(0, 0)
	for step := range int(24 * time.Hour / dayArrival) {
		now := start.Add(time.Duration(step) * dayArrival)
		var cands []pipeline.Candidate
		var full []string
		for _, v := range vols {
			open := v.ending[:0]
			for _, e := range v.ending {
				if e.After(now) {
					open = append(open, e)
				}
			}
			v.ending = open
			load := LoadPermille(len(open), dayCapacity-len(open))
			if len(open) >= dayCapacity {
				full = append(full, v.peer) // the stage server would refuse it
			}
			cands = append(cands, pipeline.Candidate{
				Peer: v.peer, First: v.first, Last: v.last,
				LayerTime: dayLayerTime, Latency: dayLatency,
				Load:  float64(load) / 1000,
				PGrid: float64(v.sig.At(ctx, now, load).PGrid) / 1000,
			})
		}
		hops, err := pipeline.Plan(cands, dayLayers, pipeline.WithGridWeight(w), pipeline.WithoutPeers(full...))
		if err != nil {
			t.Fatalf("%v: %v", now, err)
		}
		for _, hop := range hops {
			for _, v := range vols {
				if v.peer == hop.Peer {
					v.ending = append(v.ending, now.Add(load.duration))
					res.flops[now.Hour()][v.zone] += float64((hop.Last - hop.First) * dayTokens)
				}
			}
		}
	}
	return res
}

// daySummary condenses a day: the mean share of work served by each hour's
// greenest zone, the correlation between a zone's idle P_grid and its share,
// and the carbon intensity of the average FLOP.
type daySummary struct {
	greenestShare float64
	correlation   float64
	carbonPerFLOP float64 // g/kWh, FLOP-weighted
	// carbonUniform is the same with each hour's work spread evenly over the
	// zones: what grid-blind routing gives on average over peer IDs (a
	// grid-blind planner breaks ties by peer ID, so one run favours whichever
	// zone sorts first).
	carbonUniform float64
}

func (d *dayResult) summary() daySummary {
	var s daySummary
	var xs, ys []float64
	var carbon, uniform, flops float64
	for h := range 24 {
		best := 0
		var hour, mean float64
		for z := range d.zones {
			hour += d.flops[h][z]
			mean += d.carbon[h][z] / float64(len(d.zones))
		}
		uniform += hour * mean
		for z := range d.zones {
			if d.pgrid[h][z] > d.pgrid[h][best] {
				best = z
			}
			xs = append(xs, float64(d.pgrid[h][z]))
			ys = append(ys, d.share(h, z))
			carbon += d.flops[h][z] * d.carbon[h][z]
			flops += d.flops[h][z]
		}
		s.greenestShare += d.share(h, best) / 24
	}
	s.correlation = pearson(xs, ys)
	s.carbonPerFLOP = carbon / flops
	s.carbonUniform = uniform / flops
	return s
}

func pearson(xs, ys []float64) float64 {
	n := float64(len(xs))
	var mx, my float64
	for i := range xs {
		mx += xs[i] / n
		my += ys[i] / n
	}
	var sxy, sxx, syy float64
	for i := range xs {
		dx, dy := xs[i]-mx, ys[i]-my
		sxy += dx * dy
		sxx += dx * dx
		syy += dy * dy
	}
	return sxy / math.Sqrt(sxx*syy)
}

// table writes the day as a Markdown table: per UTC hour, each zone's idle
// P_grid and share of the FLOPs.
func (d *dayResult) table() string {
	var b strings.Builder
	b.WriteString("| UTC |")
	for _, z := range d.zones {
		fmt.Fprintf(&b, " P_grid %s |", z)
	}
	for _, z := range d.zones {
		fmt.Fprintf(&b, " FLOPs %s |", z)
	}
	b.WriteString("\n|---|" + strings.Repeat("---:|", 2*len(d.zones)) + "\n")
	for h := range 24 {
		fmt.Fprintf(&b, "| %02d |", h)
		best := 0
		for z := range d.zones {
			if d.pgrid[h][z] > d.pgrid[h][best] {
				best = z
			}
		}
		for z := range d.zones {
			mark := ""
			if z == best {
				mark = "*"
			}
			fmt.Fprintf(&b, " %.3f%s |", float64(d.pgrid[h][z])/1000, mark)
		}
		for z := range d.zones {
			fmt.Fprintf(&b, " %3.0f%% |", 100*d.share(h, z))
		}
		b.WriteString("\n")
	}
	return b.String()
}

// TestSimulatedDay: over a simulated day the work follows the clean hours. In a
// quiet network the greenest zone of each hour serves nearly all of it; in a busy
// one the load spreads it, and a zone's share still rises with its P_grid. Either
// way the average FLOP is cleaner than with grid-blind routing. Run with -v for
// the tables.
func TestSimulatedDay(t *testing.T) {
	for _, tc := range []struct {
		load                      workload
		minGreenest, minCorrelate float64
	}{
		{quiet, 0.9, 0.6},
		{busy, 0.4, 0.7},
	} {
		t.Run(strings.Fields(tc.load.name)[0], func(t *testing.T) {
			aware := simulateDay(t, DefaultPlanWeight, tc.load)
			blind := simulateDay(t, 0, tc.load)
			a, b := aware.summary(), blind.summary()
			t.Logf("%s, grid-aware routing (weight %.1f; * the hour's greenest zone):\n%s", tc.load.name, DefaultPlanWeight, aware.table())
			t.Logf("share of FLOPs on the hour's greenest zone: %.0f%% grid-aware, %.0f%% grid-blind (uniform: 33%%)", 100*a.greenestShare, 100*b.greenestShare)
			t.Logf("correlation of a zone's P_grid with its FLOP share: %.2f grid-aware, %.2f grid-blind", a.correlation, b.correlation)
			t.Logf("carbon intensity of the average FLOP: %.0f g/kWh grid-aware, %.0f spread evenly (%.0f%% less), %.0f grid-blind with these peer IDs",
				a.carbonPerFLOP, a.carbonUniform, 100*(1-a.carbonPerFLOP/a.carbonUniform), b.carbonPerFLOP)
			if a.greenestShare < tc.minGreenest || a.correlation < tc.minCorrelate || a.carbonPerFLOP > 0.9*a.carbonUniform || a.carbonPerFLOP > b.carbonPerFLOP {
				t.Fatalf("the work does not follow the clean hours: %+v (grid-blind %+v)", a, b)
			}
		})
	}
}
