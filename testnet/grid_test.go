package testnet

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/imece/imece/dht"
	"github.com/imece/imece/ledger"
	"github.com/imece/imece/node"
	"github.com/imece/imece/node/grid"
	"github.com/imece/imece/pipeline"
)

// switchable is a grid source a test sets after start, once it knows which
// volunteer is which.
type switchable struct{ r atomic.Pointer[grid.Static] }

func (s *switchable) Reading(ctx context.Context, at time.Time) (grid.Reading, error) {
	if r := s.r.Load(); r != nil {
		return r.Reading(ctx, at)
	}
	return grid.Reading{}, errors.New("no reading yet")
}

// sameSpeed makes the volunteers equally fast in the client's eyes: the same
// advertised rate, the same measured latency. That is the premise of the tests
// here, that only the grids differ; on one loaded machine the measurements
// differ by up to three times from noise alone (throughput timed while other
// nodes start, sub-millisecond round trips timed through DHT requests). The
// latency is the client's exponentially weighted average of round trips, so it
// is recorded until it converges, at 1 ms, near the loopback round trips still
// sampled later, whose pull is then small; call it again before each plan.
func sameSpeed(t *testing.T, client *node.Node, vols []*node.Node, rate uint64) {
	t.Helper()
	for _, v := range vols {
		if rate > 0 {
			err := v.Discovery().UpdateRecord(func(r *dht.Record) { r.Models[0].Throughput = rate })
			if err != nil {
				t.Fatal(err)
			}
		}
		for range 200 {
			client.Host().Peerstore().RecordLatency(v.ID(), time.Millisecond)
		}
	}
}

// waitForRecords waits until the client's view of the model shows every
// volunteer with the P_grid it advertises and the given rate.
func waitForRecords(t *testing.T, ctx context.Context, m *node.Model, rate uint64, pgrid map[peer.ID]uint16) {
	t.Helper()
	wctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	_, err := m.Cov.WaitFor(wctx, func(s dht.Snapshot) bool {
		for p, g := range pgrid {
			r, ok := s.Records[p]
			if !ok || r.PGrid != g || r.Models[0].Throughput != rate {
				return false
			}
		}
		return true
	})
	if err != nil {
		for p, r := range m.Cov.Snapshot().Records {
			t.Logf("seen %s: P_grid %d, rate %d", p.ShortString(), r.PGrid, r.Models[0].Throughput)
		}
		t.Fatalf("the client never saw P_grid %v at rate %d: %v", pgrid, rate, err)
	}
}

// TestGreenReplicaGetsTheTraffic: two replicas of layers [2, 5), equal but for
// their grids; every chain the client plans goes through the green one, though
// the dirty one has the smaller peer ID (which wins ties).
func TestGreenReplicaGetsTheTraffic(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	srcs := []*switchable{{}, {}, {}}
	n, err := Start(ctx, WithSplit([2]int{0, 2}, [2]int{2, 5}, [2]int{2, 5}),
		WithVolunteerOptions(func(i int) []node.Option { return []node.Option{node.WithGrid(srcs[i])} }))
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	dirtyAt, greenAt := 1, 2
	if n.Volunteers[greenAt].ID() < n.Volunteers[dirtyAt].ID() {
		dirtyAt, greenAt = greenAt, dirtyAt
	}
	dirty, green := n.Volunteers[dirtyAt], n.Volunteers[greenAt]
	srcs[greenAt].r.Store(&grid.Static{Carbon: 40, HasCarbon: true, Renewable: 0.9, HasRenewable: true})
	srcs[dirtyAt].r.Store(&grid.Static{Carbon: 750, HasCarbon: true, Renewable: 0.05, HasRenewable: true})
	head, g, d := n.Volunteers[0].Grid(), green.Grid(), dirty.Grid()
	g.Refresh()
	d.Refresh()
	waitFor(t, ctx, func() bool { return g.Last().Reading.HasCarbon && d.Last().Reading.HasCarbon })
	t.Logf("P_grid: green %d, dirty %d", g.Last().PGrid, d.Last().PGrid)

	c, err := n.Client(ctx)
	if err != nil {
		t.Fatal(err)
	}
	m, err := c.OpenModel(ctx, n.ModelID, node.DefaultCoverageWait)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	const rate = 100_000 // layer-positions per second: 10 µs a layer
	vols := []*node.Node{n.Volunteers[0], green, dirty}
	sameSpeed(t, c, vols, rate)
	waitForRecords(t, ctx, m, rate, map[peer.ID]uint16{
		green.ID(): g.Last().PGrid, dirty.ID(): d.Last().PGrid, n.Volunteers[0].ID(): head.Last().PGrid,
	})
	peers, _ := c.PeerSource(m.Cov)(ctx)
	for _, p := range peers {
		t.Logf("candidate %s [%d, %d): layer %v, latency %v, P_grid %.3f", peer.ID(p.Peer).ShortString(), p.First, p.Last, p.LayerTime, p.Latency, p.PGrid)
	}
	for i := range 3 {
		sameSpeed(t, c, vols, 0)
		var routes [][]pipeline.Hop
		_, err := m.Generate(ctx, pipeline.Request{Prompt: "Once upon a time", MaxTokens: 8},
			pipeline.WithPlanOptions(grid.PlanOption(nil)),
			pipeline.WithRouteObserver(func(r []pipeline.Hop) { routes = append(routes, r) }))
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range routes {
			for _, h := range r {
				if h.Last > 2 && h.Peer != string(green.ID()) {
					t.Fatalf("generation %d: chain %s runs layers [%d, %d) on the dirty replica", i, pipeline.FormatRoute(r), h.First, h.Last)
				}
			}
		}
	}
}

var gridDay = flag.Bool("grid.day", false, "run TestSimulatedDayInProcess over all 24 hours (about a minute) instead of three")

// simClock is the simulated clock of the day: tests set the time; refreshes are
// asked for with Refresher.Refresh, so its ticker never ticks.
type simClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *simClock) Now() time.Time  { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *simClock) set(t time.Time) { c.mu.Lock(); defer c.mu.Unlock(); c.t = t }
func (c *simClock) NewTicker(time.Duration) (<-chan time.Time, func()) {
	return make(chan time.Time), func() {}
}

// TestSimulatedDayInProcess: three replicas of the whole model, one in each of
// the simulated zones, advertise their zone's P_grid as a simulated day goes by;
// each hour a light client's generations go to the hour's greenest zone. By
// default it runs three hours, one in each zone's clean window; -grid.day runs
// the day and logs the table (node/grid's TestSimulatedDay is the same day at
// the planner's level, in milliseconds).
func TestSimulatedDayInProcess(t *testing.T) {
	hours := []int{3, 10, 19}
	if *gridDay {
		hours = hours[:0]
		for h := range 24 {
			hours = append(hours, h)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Duration(30+5*len(hours))*time.Second)
	defer cancel()
	zones := grid.SimZones()
	clock := &simClock{t: time.Date(2025, 6, 1, 0, 0, 0, 0, time.UTC)}
	n, err := Start(ctx, WithSplit([2]int{0, 5}, [2]int{0, 5}, [2]int{0, 5}),
		WithVolunteerOptions(func(i int) []node.Option {
			return []node.Option{node.WithGrid(must(grid.NewSimulated(zones[i], 7)), grid.WithRefreshClock(clock))}
		}))
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	var refreshers []*grid.Refresher
	zoneOf := map[peer.ID]int{}
	for i, v := range n.Volunteers {
		refreshers = append(refreshers, v.Grid())
		zoneOf[v.ID()] = i
	}
	c, err := n.Client(ctx)
	if err != nil {
		t.Fatal(err)
	}
	m, err := c.OpenModel(ctx, n.ModelID, node.DefaultCoverageWait)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	cost, err := ledger.CostOf(m.Info.Manifest)
	if err != nil {
		t.Fatal(err)
	}
	const rate = 100_000
	sameSpeed(t, c, n.Volunteers, rate)

	var table strings.Builder
	table.WriteString("| UTC |")
	for _, z := range zones {
		fmt.Fprintf(&table, " P_grid %s |", z.Name)
	}
	for _, z := range zones {
		fmt.Fprintf(&table, " FLOPs %s |", z.Name)
	}
	table.WriteString("\n|---|" + strings.Repeat("---:|", 2*len(zones)) + "\n")
	var onGreenest float64
	for _, h := range hours {
		clock.set(time.Date(2025, 6, 1, h, 30, 0, 0, time.UTC))
		want := map[peer.ID]uint16{}
		best := 0
		for i, r := range refreshers {
			r.Refresh()
			// The value the refresh publishes: the zone's, at the load of the
			// sessions the last hour's generations may still hold open.
			waitFor(t, ctx, func() bool { return r.Last().At.Equal(clock.Now()) })
			want[n.Volunteers[i].ID()] = r.Last().PGrid
			if want[n.Volunteers[i].ID()] > want[n.Volunteers[best].ID()] {
				best = i
			}
		}
		waitForRecords(t, ctx, m, rate, want)
		flops := make([]float64, len(zones))
		for range 2 {
			sameSpeed(t, c, n.Volunteers, 0)
			var route []pipeline.Hop
			res, err := m.Generate(ctx, pipeline.Request{Prompt: "Once upon a time", MaxTokens: 8},
				pipeline.WithPlanOptions(grid.PlanOption(nil)),
				pipeline.WithRouteObserver(func(r []pipeline.Hop) { route = r }))
			if err != nil {
				t.Fatal(err)
			}
			positions := uint32(res.PromptTokens + len(res.Tokens) - 1)
			for _, hop := range route {
				flops[zoneOf[peer.ID(hop.Peer)]] += float64(ledger.FLOPsDelivered(cost, hop.First, hop.Last, 0, positions, uint32(len(res.Tokens))))
			}
		}
		var total float64
		for _, f := range flops {
			total += f
		}
		fmt.Fprintf(&table, "| %02d |", h)
		for i := range zones {
			mark := ""
			if i == best {
				mark = "*"
			}
			fmt.Fprintf(&table, " %.3f%s |", float64(want[n.Volunteers[i].ID()])/1000, mark)
		}
		for i := range zones {
			fmt.Fprintf(&table, " %3.0f%% |", 100*flops[i]/total)
		}
		table.WriteString("\n")
		onGreenest += flops[best] / total / float64(len(hours))
	}
	t.Logf("a simulated day through real nodes (* the hour's greenest zone):\n%s", table.String())
	t.Logf("share of FLOPs on the hour's greenest zone: %.0f%% (uniform: 33%%)", 100*onGreenest)
	if onGreenest < 0.8 {
		t.Fatalf("only %.0f%% of the FLOPs went to the greenest zone", 100*onGreenest)
	}
}

// waitFor polls cond until it holds or ctx ends.
func waitFor(t *testing.T, ctx context.Context, cond func() bool) {
	t.Helper()
	for !cond() {
		select {
		case <-ctx.Done():
			t.Fatal("condition never held")
		case <-time.After(10 * time.Millisecond):
		}
	}
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}
