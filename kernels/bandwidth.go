package kernels

import (
	"sync"
	"time"
)

// DefaultBandwidthBytes is the size of each of MeasureBandwidth's three arrays when
// the caller passes 0: large enough that the three together overflow the last-level
// caches of current server parts, so the figure is DRAM's, not a cache's.
const DefaultBandwidthBytes = 256 << 20

// MeasureBandwidth runs a STREAM-style triad (a[i] = b[i] + s·c[i] over float32
// arrays of arrayBytes each) on threads goroutines and returns the best of a few
// passes in bytes per second, counting 12 bytes per element as STREAM does (two
// reads and a write). Decoding a token is a pass over the weights, so this is the
// ceiling the matrix-vector products are measured against, and an input of the
// hardware tier. It takes a few hundred milliseconds and allocates the arrays.
func MeasureBandwidth(threads, arrayBytes int) float64 {
	if threads < 1 {
		threads = 1
	}
	if arrayBytes <= 0 {
		arrayBytes = DefaultBandwidthBytes
	}
	n := arrayBytes / 4
	n -= n % (16 * threads)
	if n == 0 {
		n = 16 * threads
	}
	a, b, c := make([]float32, n), make([]float32, n), make([]float32, n)
	// Touch everything in parallel first so page faults stay out of the timing.
	stripes := func(fn func(lo, hi int)) {
		var wg sync.WaitGroup
		per := n / threads
		for t := range threads {
			wg.Add(1)
			go func() {
				defer wg.Done()
				fn(t*per, (t+1)*per)
			}()
		}
		wg.Wait()
	}
	stripes(func(lo, hi int) {
		for i := lo; i < hi; i++ {
			a[i], b[i], c[i] = 0, 1, 2
		}
	})
	best := time.Duration(1<<63 - 1)
	for range 5 {
		start := time.Now()
		stripes(func(lo, hi int) { triad(a[lo:hi], b[lo:hi], c[lo:hi], 3) })
		best = min(best, time.Since(start))
	}
	return float64(12*n) / best.Seconds()
}

func triadGo(a, b, c []float32, s float32) {
	b, c = b[:len(a)], c[:len(a)]
	for i := range a {
		a[i] = b[i] + s*c[i]
	}
}
