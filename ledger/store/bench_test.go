package store

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/dgraph-io/badger/v4"

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

// BenchmarkVerify1M opens and walks a store of 1,000,000 blocks: 500 pairs
// of parties, each pair 1,000 settled receipts (an Earn on one chain, its
// Spend on the other); IMECE_BENCH_BLOCKS changes the total. It reports the
// time of Open (which replays every chain into the State) and of Verify
// (which does it again into a fresh State, with the index and account
// checks), and the memory in use after both.
//
// The store is built once per run, not through Add: signing on every CPU,
// then one Badger WriteBatch of the same keys and values Add writes, without
// the accounts (the first Open writes them, as it mends any account that
// disagrees with the chains). Add would check each signature once more and
// sync each block, hours for a million blocks, measuring nothing Verify does.
func BenchmarkVerify1M(b *testing.B) {
	total := 1_000_000
	if v, err := strconv.Atoi(os.Getenv("IMECE_BENCH_BLOCKS")); err == nil && v > 0 {
		total = v
	}
	// IMECE_BENCH_DIR keeps the store between runs, so a second run measures
	// Open and Verify (and their memory) without the build in the process.
	dir := os.Getenv("IMECE_BENCH_DIR")
	if dir == "" {
		dir = b.TempDir()
	}
	if _, err := os.Stat(filepath.Join(dir, "MANIFEST")); err != nil {
		built := time.Now()
		buildStore(b, dir, max(total/2000, 1), 1000)
		b.Logf("built %d blocks in %v", total, time.Since(built))
	}

	start := time.Now()
	s := openTest(b, dir, WithCosts(knows("bench")))
	opened := time.Since(start)
	b.ResetTimer()
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
	b.ReportMetric(opened.Seconds(), "s/open")
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	b.ReportMetric(float64(ms.HeapInuse)/(1<<20), "MiB-heap")
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) == nil {
		b.ReportMetric(float64(ru.Maxrss)/(1<<10), "MiB-maxrss")
	}
}

// buildStore writes pairs×receipts receipts into a new store in dir (see
// BenchmarkVerify1M).
func buildStore(b *testing.B, dir string, pairs, receipts int) {
	b.Helper()
	s, err := Open(dir, withoutSync())
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	wb := s.db.NewWriteBatch()
	defer wb.Cancel()
	var mu sync.Mutex
	var failed error
	write := func(blocks []*ledger.Block) {
		mu.Lock()
		defer mu.Unlock()
		for _, blk := range blocks {
			if failed == nil {
				failed = batchBlock(wb, blk)
			}
		}
	}
	work := make(chan int)
	var wg sync.WaitGroup
	for range runtime.GOMAXPROCS(0) {
		wg.Go(func() {
			for p := range work {
				srv, cli := newParty(fmt.Sprint("bench-server", p)), newParty(fmt.Sprint("bench-client", p))
				batch := make([]*ledger.Block, 0, 200)
				for w := range receipts {
					earn, spend := receipt(b, srv, cli, "bench", uint32(w))
					batch = append(batch, earn, spend)
					if len(batch) == cap(batch) {
						write(batch)
						batch = batch[:0]
					}
				}
				write(batch)
			}
		})
	}
	for p := range pairs {
		work <- p
	}
	close(work)
	wg.Wait()
	if failed != nil {
		b.Fatal(failed)
	}
	if err := wb.Flush(); err != nil {
		b.Fatal(err)
	}
}

// batchBlock writes what writeBlock writes for a block, but the accounts.
func batchBlock(wb *badger.WriteBatch, blk *ledger.Block) error {
	cp, err := counterpartyOf(blk)
	if err != nil {
		return err
	}
	id := blk.ID()
	for _, kv := range [][2][]byte{
		{blockKey(blk.Owner, blk.Seq), blk.Encode()},
		{idKey(id), blockRef(blk.Owner, blk.Seq)},
		{headKey(blk.Owner), encodeHead(blk.Head())},
		{historyKey(blk.Owner, blk.Time, blk.Owner, blk.Seq), nil},
		{historyKey(cp, blk.Time, blk.Owner, blk.Seq), nil},
		{peerKey(blk.Owner, cp, blk.Time, blk.Owner, blk.Seq), nil},
		{peerKey(cp, blk.Owner, blk.Time, blk.Owner, blk.Seq), nil},
	} {
		if err := wb.Set(kv[0], kv[1]); err != nil {
			return err
		}
	}
	return nil
}
