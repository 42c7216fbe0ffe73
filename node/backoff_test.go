package node

import (
	"testing"
	"time"
)

func TestBackoffDoublesToCap(t *testing.T) {
	b := newBackoff(time.Second, 10*time.Second, 0)
	want := []time.Duration{1, 2, 4, 8, 10, 10, 10}
	for i, w := range want {
		if got := b.next(); got != w*time.Second {
			t.Fatalf("wait %d = %v, want %v", i, got, w*time.Second)
		}
	}
	b.reset()
	if got := b.next(); got != time.Second {
		t.Fatalf("after reset: %v, want 1s", got)
	}
}

func TestBackoffNeverOverflows(t *testing.T) {
	b := newBackoff(time.Nanosecond, time.Hour, 0)
	for range 200 {
		if d := b.next(); d <= 0 || d > time.Hour {
			t.Fatalf("wait %v outside (0, 1h]", d)
		}
	}
}

func TestBackoffJitterShortensWithinBounds(t *testing.T) {
	b := newBackoff(time.Second, time.Minute, 0.2)
	b.rand = func() float64 { return 0.5 }
	if got := b.next(); got != 900*time.Millisecond {
		t.Fatalf("jittered first wait %v, want 900ms", got)
	}
	b = newBackoff(time.Second, time.Minute, 0.2) // real randomness
	for i := range 20 {
		full := min(time.Second<<i, time.Minute)
		if d := b.next(); d > full || d < full*8/10 {
			t.Fatalf("wait %d = %v, want within [%v, %v]", i, d, full*8/10, full)
		}
	}
}
