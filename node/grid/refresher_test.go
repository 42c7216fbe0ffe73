package grid

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// manualClock is a Clock whose time and ticks the test drives.
type manualClock struct {
	mu    sync.Mutex
	t     time.Time
	ticks chan time.Time
	every time.Duration
}

func newManualClock(t time.Time) *manualClock {
	return &manualClock{t: t, ticks: make(chan time.Time)}
}

func (c *manualClock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }

func (c *manualClock) NewTicker(d time.Duration) (<-chan time.Time, func()) {
	c.mu.Lock()
	c.every = d
	c.mu.Unlock()
	return c.ticks, func() {}
}

// advance moves the time by d and delivers one tick, once the refresher takes it.
func (c *manualClock) advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	now := c.t
	c.mu.Unlock()
	c.ticks <- now
}

// TestRefresherFollowsTheDay: a simulated day, an hour per tick, publishes the
// zone's changing P_grid; ticks that change nothing publish nothing; Refresh
// picks up a new load at once.
func TestRefresherFollowsTheDay(t *testing.T) {
	clk := newManualClock(day1(0, 0))
	sig, err := NewSignal(simulated(t, "sim-central", 3), defaultWeights)
	if err != nil {
		t.Fatal(err)
	}
	var load atomic.Uint32
	published := make(chan Value, 100)
	r, err := NewRefresher(context.Background(), sig, func() uint16 { return uint16(load.Load()) },
		func(v Value) { published <- v }, WithRefreshClock(clk), WithInterval(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if clk.every != time.Hour {
		t.Fatalf("ticker every %v", clk.every)
	}
	first := r.Last()
	if want := sig.At(context.Background(), day1(0, 0), 0); first.PGrid != want.PGrid || !first.At.Equal(day1(0, 0)) {
		t.Fatalf("first value %+v, want %+v", first, want)
	}
	if len(published) != 0 {
		t.Fatal("the first value was published; the node puts it in its first record")
	}
	var lo, hi uint16 = 1000, 0
	for h := 1; h <= 24; h++ {
		clk.advance(time.Hour)
		v := <-published
		want := sig.At(context.Background(), day1(0, 0).Add(time.Duration(h)*time.Hour), 0)
		if v.PGrid != want.PGrid {
			t.Fatalf("hour %d: published %d, want %d", h, v.PGrid, want.PGrid)
		}
		lo, hi = min(lo, v.PGrid), max(hi, v.PGrid)
	}
	if hi-lo < 100 {
		t.Fatalf("P_grid only ranged over [%d, %d] in a day", lo, hi)
	}

	// A constant source: a tick changes nothing and publishes nothing.
	still, _ := NewSignal(Static{Carbon: 100, HasCarbon: true}, defaultWeights)
	clk2 := newManualClock(day1(0, 0))
	var calls atomic.Int32
	r2, err := NewRefresher(context.Background(), still, nil, func(Value) { calls.Add(1) }, WithRefreshClock(clk2))
	if err != nil {
		t.Fatal(err)
	}
	clk2.advance(time.Minute)
	clk2.advance(time.Minute) // the second tick is taken after the first was handled
	if n := calls.Load(); n != 0 {
		t.Fatalf("%d publications without a change", n)
	}
	r2.Close()

	// The load changes: Refresh publishes it without waiting for a tick.
	load.Store(500)
	r.Refresh()
	v := <-published
	if want := sig.At(context.Background(), clk.Now(), 500); v.Terms.Load != 500 || v.PGrid != want.PGrid {
		t.Fatalf("after Refresh: %+v, want %+v", v, want)
	}
	if got := r.Last(); got.Terms.Load != 500 {
		t.Fatalf("Last %+v", got)
	}
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	if err := r.Close(); err != nil {
		t.Fatal("second Close:", err)
	}
}

func TestNewRefresherRejects(t *testing.T) {
	sig, _ := NewSignal(nil, defaultWeights)
	ctx := context.Background()
	if _, err := NewRefresher(ctx, nil, nil, func(Value) {}); err == nil {
		t.Fatal("nil signal accepted")
	}
	if _, err := NewRefresher(ctx, sig, nil, nil); err == nil {
		t.Fatal("nil publish accepted")
	}
	for _, o := range []RefresherOption{WithInterval(0), WithReadTimeout(-1), WithRefreshClock(nil)} {
		if _, err := NewRefresher(ctx, sig, nil, func(Value) {}, o); err == nil {
			t.Fatal("bad option accepted")
		}
	}
}

// TestRefresherSystemClock: with the real clock and a short interval the
// refresher runs on its own, and Close stops it (goleak checks no goroutine is
// left).
func TestRefresherSystemClock(t *testing.T) {
	sig, _ := NewSignal(nil, defaultWeights)
	var load atomic.Uint32
	got := make(chan Value, 1)
	r, err := NewRefresher(context.Background(), sig, func() uint16 { return uint16(load.Load()) }, func(v Value) {
		select {
		case got <- v:
		default:
		}
	}, WithInterval(10*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	load.Store(1000)
	select {
	case v := <-got:
		if v.Terms.Load != 1000 || v.PGrid != 250 {
			t.Fatalf("got %+v", v)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no refresh within 10 s")
	}
}
