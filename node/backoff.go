package node

import (
	"math/rand/v2"
	"time"
)

// backoff yields the waits between reconnection attempts: min, 2·min, 4·min,
// … capped at max, each shortened by a random share of up to jitter so that
// nodes cut off by the same outage do not all redial a restarted bootstrap
// node in the same instant.
type backoff struct {
	min, max time.Duration
	jitter   float64        // in [0, 1)
	rand     func() float64 // in [0, 1)
	attempt  int
}

func newBackoff(min, max time.Duration, jitter float64) *backoff {
	return &backoff{min: min, max: max, jitter: jitter, rand: rand.Float64}
}

// next returns the wait before the next attempt and advances the sequence.
func (b *backoff) next() time.Duration {
	d := b.max
	if b.attempt < 62 && b.min <= b.max>>b.attempt {
		d = b.min << b.attempt
	}
	b.attempt++
	return d - time.Duration(b.jitter*b.rand()*float64(d))
}

// reset starts the sequence again from min.
func (b *backoff) reset() { b.attempt = 0 }

// clock is the part of time the reconnect loop uses, so tests can drive it
// without sleeping.
type clock interface {
	// newTimer returns a channel that receives once after d, and a function
	// that stops the timer.
	newTimer(d time.Duration) (<-chan time.Time, func() bool)
}

type realClock struct{}

func (realClock) newTimer(d time.Duration) (<-chan time.Time, func() bool) {
	t := time.NewTimer(d)
	return t.C, t.Stop
}
