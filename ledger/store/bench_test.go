package store

import (
	"context"
	"fmt"
	"os"
	"runtime"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"

	"github.com/imece/imece/ledger"
)

// BenchmarkAppend measures the node's own chain: make, sign, check and store
// one block per Append, synced to disk before the next.
func BenchmarkAppend(b *testing.B) {
	s := openTest(b, b.TempDir())
	priv := testKey("bench")
	body := spendBody(testKey("bench-server"), 1)
	for b.Loop() {
		if _, err := s.Append(priv, ledger.KindSpend, body); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "blocks/s")
}

// BenchmarkAddParallel measures replication's write path: blocks of many
// chains arriving at once, each checked and committed in its own synced
// transaction (Badger batches concurrent commits into one write and fsync).
func BenchmarkAddParallel(b *testing.B) {
	for _, writers := range []int{4, 16} {
		b.Run(fmt.Sprintf("writers=%d", writers), func(b *testing.B) {
			s := openTest(b, b.TempDir())
			chains := make([][]*ledger.Block, writers)
			per := b.N/writers + 1
			var wg sync.WaitGroup
			for w := range chains {
				wg.Go(func() { chains[w] = spendChain(testKey(fmt.Sprint("writer", w)), per) })
			}
			wg.Wait()
			var next atomic.Int64
			b.ResetTimer()
			for w := range chains {
				wg.Go(func() {
					for _, blk := range chains[w] {
						if next.Add(1) > int64(b.N) {
							return
						}
						if err := s.Add(blk); err != nil {
							b.Error(err)
							return
						}
					}
				})
			}
			wg.Wait()
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "blocks/s")
		})
	}
}

// BenchmarkVerify1M walks a store of 1,000,000 blocks (1,000 chains of 1,000;
// IMECE_BENCH_BLOCKS changes the total). The store is built once per run
// through the real Add path with sync writes turned off (withoutSync): the
// blocks are the same, only the fsync per block is skipped, which would make
// the setup take hours and measures nothing Verify does.
func BenchmarkVerify1M(b *testing.B) {
	total := 1_000_000
	if v, err := strconv.Atoi(os.Getenv("IMECE_BENCH_BLOCKS")); err == nil && v > 0 {
		total = v
	}
	const chains = 1000
	per := max(total/chains, 1)
	dir := b.TempDir()
	buildStore(b, dir, chains, per)

	s := openTest(b, dir)
	var blocks uint64
	for b.Loop() {
		r, err := s.Verify(context.Background())
		if err != nil {
			b.Fatal(err)
		}
		blocks += r.Blocks
	}
	b.ReportMetric(float64(blocks)/b.Elapsed().Seconds(), "blocks/s")
	b.ReportMetric(b.Elapsed().Seconds()/float64(b.N), "s/verify")
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	b.ReportMetric(float64(ms.HeapInuse)/(1<<20), "MiB-heap")
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) == nil {
		b.ReportMetric(float64(ru.Maxrss)/(1<<10), "MiB-maxrss")
	}
}

// buildStore fills dir with chains×per blocks, signing and adding on every
// CPU.
func buildStore(b *testing.B, dir string, chains, per int) {
	b.Helper()
	s, err := Open(dir, withoutSync())
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	work := make(chan int)
	var wg sync.WaitGroup
	var failed atomic.Value
	for range runtime.GOMAXPROCS(0) * 2 {
		wg.Go(func() {
			for c := range work {
				for _, blk := range spendChain(testKey(fmt.Sprint("chain", c)), per) {
					if err := s.Add(blk); err != nil {
						failed.Store(err)
						return
					}
				}
			}
		})
	}
	for c := range chains {
		work <- c
	}
	close(work)
	wg.Wait()
	if err, _ := failed.Load().(error); err != nil {
		b.Fatal(err)
	}
}
