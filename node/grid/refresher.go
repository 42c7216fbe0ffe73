package grid

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"
)

// Refresher defaults.
const (
	// DefaultRefreshInterval is how often a node recomputes its P_grid and
	// load. Records are republished at most every 2 s (dht), grid data changes
	// every 30 to 60 minutes; the interval is mostly for the load.
	DefaultRefreshInterval = 15 * time.Second
	// DefaultReadTimeout bounds one reading of the source.
	DefaultReadTimeout = 20 * time.Second
)

// RefresherOption configures a Refresher.
type RefresherOption func(*refresherConfig) error

type refresherConfig struct {
	every   time.Duration
	timeout time.Duration
	clock   Clock
	log     *slog.Logger
}

// WithInterval sets how often the value is recomputed (default
// DefaultRefreshInterval).
func WithInterval(d time.Duration) RefresherOption {
	return func(c *refresherConfig) error {
		if d <= 0 {
			return fmt.Errorf("grid: refresh interval %v must be positive", d)
		}
		c.every = d
		return nil
	}
}

// WithReadTimeout bounds one reading of the source (default
// DefaultReadTimeout).
func WithReadTimeout(d time.Duration) RefresherOption {
	return func(c *refresherConfig) error {
		if d <= 0 {
			return fmt.Errorf("grid: read timeout %v must be positive", d)
		}
		c.timeout = d
		return nil
	}
}

// WithRefreshClock sets the clock that dates readings and ticks (default
// SystemClock).
func WithRefreshClock(cl Clock) RefresherOption {
	return func(c *refresherConfig) error {
		if cl == nil {
			return errors.New("grid: nil clock")
		}
		c.clock = cl
		return nil
	}
}

// WithRefreshLogger sets the logger (default: none).
func WithRefreshLogger(l *slog.Logger) RefresherOption {
	return func(c *refresherConfig) error { c.log = l; return nil }
}

// Refresher keeps a node's advertised P_grid and load current: every interval,
// and whenever Refresh is called, it recomputes them and calls publish when
// either changed. The node owns it and closes it before its discovery.
type Refresher struct {
	sig     *Signal
	load    func() uint16
	publish func(Value)
	cfg     refresherConfig

	mu     sync.Mutex
	last   Value
	failed bool // the source's last reading failed (logged once per outage)

	poke   chan struct{}
	cancel context.CancelFunc
	done   chan struct{}
	once   sync.Once
}

// NewRefresher computes the first value at once (bounded by ctx), so that the
// node's first record carries it (Last), then refreshes in the background.
// load returns the node's load in permille (nil: always 0); publish receives
// each changed value, from the Refresher's goroutine, and must not block long.
func NewRefresher(ctx context.Context, sig *Signal, load func() uint16, publish func(Value), opts ...RefresherOption) (*Refresher, error) {
	if sig == nil || publish == nil {
		return nil, errors.New("grid: a refresher needs a signal and a publish function")
	}
	cfg := refresherConfig{every: DefaultRefreshInterval, timeout: DefaultReadTimeout, clock: SystemClock(), log: slog.New(slog.DiscardHandler)}
	for _, o := range opts {
		if err := o(&cfg); err != nil {
			return nil, err
		}
	}
	if load == nil {
		load = func() uint16 { return 0 }
	}
	r := &Refresher{sig: sig, load: load, publish: publish, cfg: cfg, poke: make(chan struct{}, 1), done: make(chan struct{})}
	r.last = r.compute(ctx)
	lctx, cancel := context.WithCancel(context.Background())
	r.cancel = cancel
	tick, stop := cfg.clock.NewTicker(cfg.every)
	go r.loop(lctx, tick, stop)
	return r, nil
}

// Last is the latest value, what the node's record should carry.
func (r *Refresher) Last() Value {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.last
}

// Refresh asks for a new value now, without waiting for it: for instance when
// a session opens or closes and the load changed.
func (r *Refresher) Refresh() {
	select {
	case r.poke <- struct{}{}:
	default:
	}
}

// Close stops the refreshes and waits for a publish under way. It is
// idempotent.
func (r *Refresher) Close() error {
	r.once.Do(func() {
		r.cancel()
		<-r.done
	})
	return nil
}

func (r *Refresher) loop(ctx context.Context, tick <-chan time.Time, stop func()) {
	defer close(r.done)
	defer stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick:
		case <-r.poke:
		}
		v := r.compute(ctx)
		if ctx.Err() != nil {
			return
		}
		r.mu.Lock()
		changed := v.PGrid != r.last.PGrid || v.Terms.Load != r.last.Terms.Load
		r.last = v
		r.mu.Unlock()
		if changed {
			r.publish(v)
		}
	}
}

// compute reads the signal now, logging when the source starts or stops
// failing rather than at every reading.
func (r *Refresher) compute(ctx context.Context) Value {
	ctx, cancel := context.WithTimeout(ctx, r.cfg.timeout)
	defer cancel()
	v := r.sig.At(ctx, r.cfg.clock.Now(), r.load())
	r.mu.Lock()
	was := r.failed
	r.failed = v.Err != nil
	r.mu.Unlock()
	switch {
	case v.Err != nil && !was:
		r.cfg.log.Warn("grid signal unavailable, assuming the average grid", "p_grid", v.PGrid, "err", v.Err)
	case v.Err == nil && was:
		r.cfg.log.Info("grid signal back", "p_grid", v.PGrid)
	}
	return v
}
