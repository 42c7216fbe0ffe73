package replicate

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/imece/imece/ledger"
)

// Blocks appended on several nodes of a 5-node network reach every node by
// gossip alone (anti-entropy off).
func TestGossipReachesAll(t *testing.T) {
	nodes := mesh(t, 5, []Option{WithAntiEntropy(0, 0)})
	var wg sync.WaitGroup
	for _, n := range nodes[:3] {
		wg.Go(func() { appendAndPublish(t, n, 20) })
	}
	wg.Wait()
	waitSameHeads(t, 30*time.Second, 60, nodes...)
	for _, n := range nodes {
		if s := n.r.Stats(); s.Refused != 0 || s.Rejected != 0 {
			t.Errorf("%s: %+v", n.name, s)
		}
	}
}

// A node offline while the others append hundreds of blocks catches up when
// it comes back with the same key and store: anti-entropy on connection,
// with small batches so heads and ranges take several pages.
func TestOfflineNodeCatchesUp(t *testing.T) {
	nodes := mesh(t, 5, []Option{WithAntiEntropy(0, 0), WithBatches(7, 2)})
	appendAndPublish(t, nodes[4], 3) // the absent node has a chain of its own
	waitSameHeads(t, 30*time.Second, 3, nodes...)

	late := nodes[4]
	late.stop()
	var wg sync.WaitGroup
	for _, n := range nodes[:3] {
		wg.Go(func() { appendAndPublish(t, n, 100) })
	}
	wg.Wait()
	waitSameHeads(t, 60*time.Second, 303, nodes[:4]...)

	late.start()
	for _, n := range nodes[:4] {
		connect(t, late, n)
	}
	waitSameHeads(t, 60*time.Second, 303, nodes...)
	// GossipSub may hand over the last few messages from its cache; the rest
	// come by pulls.
	if s := late.r.Stats(); s.Pulled == 0 || s.Pulled+s.Gossiped < 300 {
		t.Errorf("the late node stored %d pulled and %d gossiped blocks, want 300 in all: %+v", s.Pulled, s.Gossiped, s)
	}
}

// A partition heals by periodic anti-entropy alone: two halves append
// without hearing each other, then one connection joins them.
func TestPartitionHeals(t *testing.T) {
	opts := []Option{WithAntiEntropy(50*time.Millisecond, 2)}
	left := meshNamed(t, "left", 2, opts)
	right := meshNamed(t, "right", 2, opts)
	appendAndPublish(t, left[0], 10)
	appendAndPublish(t, right[1], 10)
	waitSameHeads(t, 30*time.Second, 10, left...)
	waitSameHeads(t, 30*time.Second, 10, right...)
	connect(t, left[1], right[0])
	waitSameHeads(t, 30*time.Second, 20, append(left, right...)...)
}

// waitFrozen waits until every node has frozen owner: a fraud proof stored,
// nothing available.
func waitFrozen(t *testing.T, timeout time.Duration, owner ledger.Key, nodes ...*node) {
	t.Helper()
	waitFor(t, timeout, func() (bool, string) {
		for _, n := range nodes {
			frozen, err := n.st.Frozen(owner)
			if err != nil {
				t.Fatal(err)
			}
			bal, err := n.st.Balance(owner)
			if err != nil {
				t.Fatal(err)
			}
			if !frozen || !bal.Frozen || bal.Available() != 0 {
				return false, fmt.Sprintf("%s: frozen %v, balance %+v", n.name, frozen, bal)
			}
		}
		return true, ""
	})
}

// An identity that signs two different blocks at one sequence and gives one
// to each half of a 5-node network is frozen on all five: the half holding
// the other branch finds the fork when a later block does not link to its
// head, pulls, gets the proof from its store, and gossips it to the rest.
func TestForkFreezesEverywhere(t *testing.T) {
	nodes := mesh(t, 5, []Option{WithAntiEntropy(0, 0)})
	forger := testKey("forger")
	prefix := chainOf(forger, nil, 2, 0)
	for _, b := range prefix {
		if err := nodes[0].st.Add(b); err != nil {
			t.Fatal(err)
		}
		if err := nodes[0].r.Publish(context.Background(), b); err != nil {
			t.Fatal(err)
		}
	}
	waitSameHeads(t, 30*time.Second, 2, nodes...)

	a := chainOf(forger, prefix[1], 2, 0) // blocks 3 and 4 of one branch
	b := chainOf(forger, prefix[1], 1, 1) // block 3 of another
	for _, n := range nodes[:3] {
		if err := n.st.Add(a[0]); err != nil {
			t.Fatal(err)
		}
	}
	for _, n := range nodes[3:] {
		if err := n.st.Add(b[0]); err != nil {
			t.Fatal(err)
		}
	}
	if err := nodes[0].st.Add(a[1]); err != nil {
		t.Fatal(err)
	}
	if err := nodes[0].r.Publish(context.Background(), a[1]); err != nil {
		t.Fatal(err)
	}
	waitFrozen(t, 30*time.Second, keyOf(forger), nodes...)
	var forks uint64
	for _, n := range nodes {
		forks += n.r.Stats().Forks
	}
	if forks == 0 {
		t.Error("no node reports finding the fork")
	}
}

// Two blocks at one sequence announced at once on two nodes: every node sees
// both by gossip, and every node freezes the owner.
func TestForkByGossip(t *testing.T) {
	var mu sync.Mutex
	found := map[string]Source{}
	nodes := make([]*node, 5)
	for i := range nodes {
		name := fmt.Sprintf("n%d", i)
		nodes[i] = newNode(t, name, []Option{WithAntiEntropy(0, 0), WithOnFraudProof(func(p *ledger.FraudProof, src Source) {
			mu.Lock()
			found[name] = src
			mu.Unlock()
		})})
	}
	for i := range nodes {
		for j := i + 1; j < len(nodes); j++ {
			connect(t, nodes[i], nodes[j])
		}
	}
	waitTopicPeers(t, nodes...)
	forger := testKey("forger")
	a, b := chainOf(forger, nil, 1, 0)[0], chainOf(forger, nil, 1, 1)[0]
	for _, x := range []struct {
		n *node
		b *ledger.Block
	}{{nodes[0], a}, {nodes[4], b}} {
		if err := x.n.st.Add(x.b); err != nil {
			t.Fatal(err)
		}
		if err := x.n.r.Publish(context.Background(), x.b); err != nil {
			t.Fatal(err)
		}
	}
	waitFrozen(t, 30*time.Second, keyOf(forger), nodes...)
	mu.Lock()
	defer mu.Unlock()
	if len(found) == 0 {
		t.Error("OnFraudProof never called")
	}
}

// A node that was away when a fork was found learns the proof from its
// peers' heads when it connects.
func TestFraudProofBySync(t *testing.T) {
	a := newNode(t, "a", []Option{WithAntiEntropy(0, 0)})
	b := newNode(t, "b", []Option{WithAntiEntropy(0, 0)})
	forger := testKey("forger")
	p, ok := ledger.DetectFork(chainOf(forger, nil, 1, 0)[0], chainOf(forger, nil, 1, 1)[0])
	if !ok {
		t.Fatal("not a fork")
	}
	if err := a.st.AddFraudProof(p); err != nil {
		t.Fatal(err)
	}
	connect(t, b, a)
	waitFrozen(t, 10*time.Second, keyOf(forger), a, b)
	if got := b.r.Stats().Proofs; got != 1 {
		t.Errorf("b learnt %d proofs, want 1", got)
	}
}

// Close is prompt and idempotent, and a closed Replicator refuses work.
func TestClose(t *testing.T) {
	n := newNode(t, "a", nil)
	r := n.r
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	b := chainOf(testKey("x"), nil, 1, 0)[0]
	if err := r.Publish(context.Background(), b); !errors.Is(err, ErrClosed) {
		t.Errorf("Publish after Close: %v", err)
	}
	if err := r.SyncWith(context.Background(), n.h.ID()); !errors.Is(err, ErrClosed) {
		t.Errorf("SyncWith after Close: %v", err)
	}
}
