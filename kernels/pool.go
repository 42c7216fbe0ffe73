package kernels

import (
	"runtime"
	"sync"
	"sync/atomic"
)

// pool is the backend's persistent set of worker goroutines. A call splits its work
// into numbered items; the calling goroutine always takes items itself, so a call
// progresses even while every worker serves another session, and workers that join
// take items from the same atomic counter. Handing a job over is one channel send
// per helper, a few microseconds, which a decode step pays ~150 times per token.
type pool struct {
	jobs    chan *job
	quit    chan struct{}
	wg      sync.WaitGroup
	helpers int // workers besides the caller
	closed  atomic.Bool
}

// job is one parallel call: fn runs over items [lo, hi) taken grain at a time. It
// lives in a callScratch and is reused, so its fields carry the arguments instead
// of a closure (which would allocate).
type job struct {
	fn    func(j *job, lo, hi int, ws *workerScratch)
	items int
	grain int
	next  atomic.Int64
	done  chan struct{}

	mat  matArgs
	attn Attention
	dst  []float32
	q    []float32
	kern *kernelSet
	blas *blasLib
	segs int       // attention: position segments per query
	part []float32 // attention: the segments' partial results
}

// workerScratch is memory owned by one goroutine for the duration of an item:
// attention scores, a dequantized weight row. It only grows.
type workerScratch struct {
	f32  []float32
	f32b []float32
}

func newPool(threads int) *pool {
	p := &pool{
		jobs:    make(chan *job, 4*threads),
		quit:    make(chan struct{}),
		helpers: threads - 1,
	}
	for range p.helpers {
		p.wg.Add(1)
		go p.work()
	}
	return p
}

// spinChecks is how many times an idle worker, or a caller waiting for its
// helpers, polls before blocking: about 20µs, longer than the gap between two
// matrix products of a decode step, so a worker is still awake when the next one
// arrives instead of paying a futex wake-up each time.
const spinChecks = 2000

func (p *pool) work() {
	defer p.wg.Done()
	var ws workerScratch
	for {
		var j *job
		for i := 0; i < spinChecks && j == nil; i++ {
			select {
			case j = <-p.jobs:
			default:
				if i%128 == 127 {
					runtime.Gosched() // let other goroutines of this P run
				}
			}
		}
		if j == nil {
			select {
			case j = <-p.jobs:
			case <-p.quit:
				return
			}
		}
		j.run(&ws)
		j.done <- struct{}{}
	}
}

func (j *job) run(ws *workerScratch) {
	for {
		lo := int(j.next.Add(int64(j.grain))) - j.grain
		if lo >= j.items {
			return
		}
		j.fn(j, lo, min(lo+j.grain, j.items), ws)
	}
}

// parallel runs j over its items with the caller's scratch ws, using as many
// workers as there are grains beyond the first, and returns when every item is done
// and no worker holds j any more.
func (p *pool) parallel(j *job, ws *workerScratch) {
	j.next.Store(0)
	chunks := (j.items + j.grain - 1) / j.grain
	sent := 0
	if !p.closed.Load() {
		for sent < min(p.helpers, chunks-1) {
			select {
			case p.jobs <- j:
				sent++
				continue
			default:
			}
			break
		}
	}
	j.run(ws)
	for i := 0; i < spinChecks && len(j.done) < sent; i++ {
		if i%128 == 127 {
			runtime.Gosched()
		}
	}
	for range sent {
		<-j.done
	}
}

func (p *pool) close() {
	if p.closed.Swap(true) {
		return
	}
	close(p.quit)
	p.wg.Wait()
}
