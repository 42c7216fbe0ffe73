package replicate

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p"
	pubsub "github.com/libp2p/go-libp2p-pubsub"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/imece/imece/ledger"
	"github.com/imece/imece/ledger/store"
)

const testNetwork = "imece-test/0123abcd"

// testKey derives a fixed Ed25519 key from a name: a node's host identity
// and ledger key, or a participant that runs no node.
func testKey(name string) ed25519.PrivateKey {
	seed := sha256.Sum256([]byte("replicate test key " + name))
	return ed25519.NewKeyFromSeed(seed[:])
}

func keyOf(priv ed25519.PrivateKey) ledger.Key {
	var k ledger.Key
	copy(k[:], priv.Public().(ed25519.PublicKey))
	return k
}

// testLogger shows the Replicator's logs with -v when REPLICATE_LOG is set.
func testLogger(t testing.TB, name string) *slog.Logger {
	if os.Getenv("REPLICATE_LOG") == "" {
		return slog.New(slog.DiscardHandler)
	}
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug})).With("node", name)
}

// node is one in-process imece node as far as the ledger goes: a loopback
// host with its GossipSub router, a store in a directory that survives a
// restart, and a Replicator.
type node struct {
	t      testing.TB
	name   string
	priv   ed25519.PrivateKey
	dir    string
	opts   []Option
	stOpts []store.Option

	h        host.Host
	ps       *pubsub.PubSub
	psCancel context.CancelFunc
	st       *store.Store
	r        *Replicator
}

func newNode(t testing.TB, name string, opts []Option, stOpts ...store.Option) *node {
	t.Helper()
	n := &node{t: t, name: name, priv: testKey(name), dir: t.TempDir(), opts: opts, stOpts: stOpts}
	n.start()
	t.Cleanup(n.stop)
	return n
}

// start brings the node up with its key and directory: a restart after stop.
func (n *node) start() {
	t := n.t
	t.Helper()
	key, err := crypto.UnmarshalEd25519PrivateKey(n.priv)
	if err != nil {
		t.Fatal(err)
	}
	if n.h, err = libp2p.New(libp2p.Identity(key), libp2p.ListenAddrStrings("/ip4/127.0.0.1/tcp/0")); err != nil {
		t.Fatal(err)
	}
	var ctx context.Context
	ctx, n.psCancel = context.WithCancel(context.Background())
	if n.ps, err = pubsub.NewGossipSub(ctx, n.h, pubsub.WithFloodPublish(true)); err != nil {
		t.Fatal(err)
	}
	if n.st, err = store.Open(n.dir, n.stOpts...); err != nil {
		t.Fatal(err)
	}
	opts := append([]Option{WithLogger(testLogger(t, n.name))}, n.opts...)
	if n.r, err = New(n.h, n.st, n.ps, testNetwork, opts...); err != nil {
		t.Fatal(err)
	}
}

// stop takes the node down in the order a node does: replication, router,
// host, store.
func (n *node) stop() {
	if n.r == nil {
		return
	}
	if err := n.r.Close(); err != nil {
		n.t.Errorf("%s: Close: %v", n.name, err)
	}
	n.psCancel()
	n.h.Close()
	n.st.Close()
	n.r = nil
}

func (n *node) key() ledger.Key { return keyOf(n.priv) }

func (n *node) info() peer.AddrInfo { return peer.AddrInfo{ID: n.h.ID(), Addrs: n.h.Addrs()} }

func connect(t testing.TB, a, b *node) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := a.h.Connect(ctx, b.info()); err != nil {
		t.Fatalf("connect %s to %s: %v", a.name, b.name, err)
	}
}

// mesh starts n nodes and connects every pair, then waits until each sees
// every other on the block topic, so a publication reaches all of them.
func mesh(t testing.TB, count int, opts []Option, stOpts ...store.Option) []*node {
	t.Helper()
	return meshNamed(t, "n", count, opts, stOpts...)
}

// meshNamed is mesh with the nodes named (and keyed) prefix0, prefix1, ...
func meshNamed(t testing.TB, prefix string, count int, opts []Option, stOpts ...store.Option) []*node {
	t.Helper()
	nodes := make([]*node, count)
	for i := range nodes {
		nodes[i] = newNode(t, fmt.Sprintf("%s%d", prefix, i), opts, stOpts...)
	}
	for i := range nodes {
		for j := i + 1; j < count; j++ {
			connect(t, nodes[i], nodes[j])
		}
	}
	waitTopicPeers(t, nodes...)
	return nodes
}

// waitTopicPeers waits until every node's block topic lists every other node
// it is connected to.
func waitTopicPeers(t testing.TB, nodes ...*node) {
	t.Helper()
	waitFor(t, 10*time.Second, func() (bool, string) {
		for _, a := range nodes {
			listed := a.r.blocks.ListPeers()
			for _, b := range nodes {
				if a != b && len(a.h.Network().ConnsToPeer(b.h.ID())) > 0 && !slices.Contains(listed, b.h.ID()) {
					return false, fmt.Sprintf("%s does not see %s on the topic", a.name, b.name)
				}
			}
		}
		return true, ""
	})
}

// waitFor polls cond until it holds or the deadline passes: a bounded wait,
// never a fixed sleep.
func waitFor(t testing.TB, timeout time.Duration, cond func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for {
		ok, why := cond()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("after %v: %s", timeout, why)
		}
		<-tick.C
	}
}

// headsString is a store's heads in a comparable form.
func headsString(t testing.TB, st *store.Store) string {
	t.Helper()
	heads, err := st.Heads()
	if err != nil {
		t.Fatal(err)
	}
	keys := make([]ledger.Key, 0, len(heads))
	for k := range heads {
		keys = append(keys, k)
	}
	slices.SortFunc(keys, func(a, b ledger.Key) int { return bytes.Compare(a[:], b[:]) })
	var b strings.Builder
	for _, k := range keys {
		fmt.Fprintf(&b, "%s:%d:%s ", k, heads[k].Seq, heads[k].ID.String()[:8])
	}
	return b.String()
}

// waitSameHeads waits until every node holds the same chains with the same
// heads, and at least want blocks in all.
func waitSameHeads(t testing.TB, timeout time.Duration, want uint64, nodes ...*node) {
	t.Helper()
	waitFor(t, timeout, func() (bool, string) {
		ref := headsString(t, nodes[0].st)
		for _, n := range nodes[1:] {
			if got := headsString(t, n.st); got != ref {
				return false, fmt.Sprintf("%s heads %s, %s heads %s", nodes[0].name, ref, n.name, got)
			}
		}
		heads, _ := nodes[0].st.Heads()
		var total uint64
		for _, h := range heads {
			total += h.Seq
		}
		return total >= want, fmt.Sprintf("%d blocks of %d", total, want)
	})
}

// spendBody is a well-formed Spend agreeing to a made-up proposal of server:
// the chain rules accept it, and its receipt stays pending.
func spendBody(server ledger.Key, n uint64) []byte {
	var proposal ledger.BlockID
	proposal[0], proposal[31] = 1, byte(n)
	proposal[30] = byte(n >> 8)
	sp := ledger.Spend{Server: server, Proposal: proposal, Seq: n, Amount: 1000}
	return sp.Encode()
}

// appendAndPublish appends count blocks to n's own chain and announces each,
// as a node does after settling a receipt.
func appendAndPublish(t testing.TB, n *node, count int) []*ledger.Block {
	t.Helper()
	server := keyOf(testKey("made-up server"))
	out := make([]*ledger.Block, 0, count)
	for range count {
		head, _ := n.st.Head(n.key())
		b, err := n.st.Append(n.priv, ledger.KindSpend, spendBody(server, head.Seq+1))
		if err != nil {
			t.Fatalf("%s: Append: %v", n.name, err)
		}
		if err := n.r.Publish(context.Background(), b); err != nil {
			t.Fatalf("%s: Publish: %v", n.name, err)
		}
		out = append(out, b)
	}
	return out
}

// chainOf makes count signed, linked Spend blocks of priv's chain after prev
// (nil for a new chain), made by hand as a participant that runs no node
// (or a forger) would.
func chainOf(priv ed25519.PrivateKey, prev *ledger.Block, count int, salt byte) []*ledger.Block {
	server := keyOf(testKey("made-up server"))
	out := make([]*ledger.Block, 0, count)
	for range count {
		var head ledger.Head
		if prev != nil {
			head = prev.Head()
		}
		body := spendBody(server, head.Seq+1)
		body[len(body)-1] ^= salt // a different amount: a different block
		b, err := ledger.NewBlock(priv, head, ledger.KindSpend, body, 1_700_000_000_000+int64(head.Seq)*1000)
		if err != nil {
			panic(err)
		}
		out = append(out, b)
		prev = b
	}
	return out
}
