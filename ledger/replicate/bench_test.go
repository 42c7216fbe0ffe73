package replicate

import (
	"context"
	"flag"
	"fmt"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/imece/imece/ledger"
	"github.com/imece/imece/ledger/store"
)

var (
	lagBlocks = flag.Int("replicate.blocks", 10_000, "blocks BenchmarkReplicationLag appends")
	lagRate   = flag.Float64("replicate.rate", 0, "blocks per second BenchmarkReplicationLag appends (0: as fast as the store allows)")
)

// BenchmarkReplicationLag measures how long a block takes to reach every
// node: 10 in-process nodes, fully connected; one appends blocks as fast as
// its store allows (each synced to disk) and announces each. Per block and
// per other node, the lag is from Append returning at the author to the
// block being stored (synced) at the other node, whether gossip or a pull
// brought it. Reports p50, p99 and max lag, and the throughput: blocks per
// second from the first Append to the last block stored everywhere. With
// -replicate.rate the author paces its appends, to see the lag of a network
// that keeps up rather than the queues of one that does not.
func BenchmarkReplicationLag(b *testing.B) {
	const nodes = 10
	n := *lagBlocks
	for b.Loop() {
		appended := make([]atomic.Int64, n+1)
		arrived := make([][]atomic.Int64, nodes)
		net := make([]*node, nodes)
		for i := range net {
			arrived[i] = make([]atomic.Int64, n+1)
			at := arrived[i]
			onBlock := func(blk *ledger.Block, _ Source) {
				if blk.Owner == keyOf(testKey("bench0")) && blk.Seq <= uint64(n) {
					at[blk.Seq].Store(time.Now().UnixNano())
				}
			}
			net[i] = newNode(b, fmt.Sprintf("bench%d", i), []Option{WithOnBlock(onBlock)},
				store.WithCacheSize(4<<20), store.WithMemTableSize(8<<20))
		}
		for i := range net {
			for j := i + 1; j < nodes; j++ {
				connect(b, net[i], net[j])
			}
		}
		waitTopicPeers(b, net...)

		author := net[0]
		body := spendBody(keyOf(testKey("made-up server")), 1)
		start := time.Now()
		for seq := 1; seq <= n; seq++ {
			if *lagRate > 0 {
				if d := time.Until(start.Add(time.Duration(float64(seq-1) / *lagRate * float64(time.Second)))); d > 0 {
					time.Sleep(d)
				}
			}
			blk, err := author.st.Append(author.priv, ledger.KindSpend, body)
			if err != nil {
				b.Fatal(err)
			}
			appended[seq].Store(time.Now().UnixNano())
			if err := author.r.Publish(context.Background(), blk); err != nil {
				b.Fatal(err)
			}
		}
		appendTime := time.Since(start)
		waitFor(b, time.Hour, func() (bool, string) {
			for _, nd := range net[1:] {
				h, err := nd.st.Head(author.key())
				if err != nil || h.Seq < uint64(n) {
					return false, fmt.Sprintf("%s has %d blocks of %d", nd.name, h.Seq, n)
				}
			}
			return true, ""
		})
		total := time.Since(start)

		lags := make([]time.Duration, 0, n*(nodes-1))
		for i := 1; i < nodes; i++ {
			for seq := 1; seq <= n; seq++ {
				lags = append(lags, time.Duration(arrived[i][seq].Load()-appended[seq].Load()))
			}
		}
		slices.Sort(lags)
		pct := func(p float64) time.Duration { return lags[min(len(lags)-1, int(p*float64(len(lags))))] }
		b.ReportMetric(float64(pct(0.50).Microseconds())/1000, "p50-ms")
		b.ReportMetric(float64(pct(0.99).Microseconds())/1000, "p99-ms")
		b.ReportMetric(float64(lags[len(lags)-1].Microseconds())/1000, "max-ms")
		b.ReportMetric(float64(n)/total.Seconds(), "blocks/s")
		b.ReportMetric(float64(n)/appendTime.Seconds(), "appends/s")
		for _, nd := range net[1:] {
			b.Logf("%s: %+v", nd.name, nd.r.Stats())
		}
		b.StopTimer()
		for _, nd := range net {
			nd.stop()
		}
		b.StartTimer()
	}
}
