package replicate

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p"
	pubsub "github.com/libp2p/go-libp2p-pubsub"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"

	"github.com/imece/imece/ledger"
)

// attacker is a host that speaks the protocols without following them: its
// GossipSub router has no validator, and it writes raw bytes on sync
// streams.
type attacker struct {
	h      host.Host
	ps     *pubsub.PubSub
	cancel context.CancelFunc
	blocks *pubsub.Topic
	fraud  *pubsub.Topic
}

func newAttacker(t *testing.T) *attacker {
	t.Helper()
	h, err := libp2p.New(libp2p.ListenAddrStrings("/ip4/127.0.0.1/tcp/0"))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	a := &attacker{h: h, cancel: cancel}
	t.Cleanup(func() {
		for _, tp := range []*pubsub.Topic{a.blocks, a.fraud} {
			if tp != nil {
				tp.Close()
			}
		}
		cancel()
		h.Close()
	})
	if a.ps, err = pubsub.NewGossipSub(ctx, h, pubsub.WithFloodPublish(true)); err != nil {
		t.Fatal(err)
	}
	if a.blocks, err = a.ps.Join(BlockTopic(testNetwork)); err != nil {
		t.Fatal(err)
	}
	if a.fraud, err = a.ps.Join(FraudTopic(testNetwork)); err != nil {
		t.Fatal(err)
	}
	return a
}

func (a *attacker) connect(t *testing.T, n *node) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := a.h.Connect(ctx, n.info()); err != nil {
		t.Fatal(err)
	}
}

// Garbage on the topics — random bytes, a forged signature, an oversized
// message, a proof that is no fork — is rejected by the first node, never
// relayed, never stored, and the node goes on replicating.
func TestGarbageOnTopics(t *testing.T) {
	nodes := mesh(t, 2, []Option{WithAntiEntropy(0, 0)})
	victim, behind := nodes[0], nodes[1]
	a := newAttacker(t)
	a.connect(t, victim)
	waitFor(t, 10*time.Second, func() (bool, string) {
		return len(a.blocks.ListPeers()) > 0 && len(a.fraud.ListPeers()) > 0, "attacker does not see the victim on the topics"
	})

	forged := chainOf(testKey("forger"), nil, 1, 0)[0]
	forged.Sig[0] ^= 1
	junk := make([]byte, 600<<10)
	rand.NewChaCha8([32]byte{1}).Read(junk)
	other1, other2 := chainOf(testKey("x"), nil, 1, 0)[0], chainOf(testKey("y"), nil, 1, 0)[0]
	notFork := (&ledger.FraudProof{A: other1, B: other2}).Encode()
	ctx := context.Background()
	for _, m := range [][]byte{[]byte("hello, imece"), forged.Encode(), junk} {
		if err := a.blocks.Publish(ctx, m); err != nil {
			t.Fatal(err)
		}
	}
	for _, m := range [][]byte{junk[:300], notFork} {
		if err := a.fraud.Publish(ctx, m); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, 10*time.Second, func() (bool, string) {
		s := victim.r.Stats()
		return s.Rejected >= 5, "victim rejected fewer than 5 messages"
	})
	// The node still works: a block of the other node arrives.
	appendAndPublish(t, behind, 1)
	waitSameHeads(t, 10*time.Second, 1, nodes...)
	for _, n := range nodes {
		if _, err := n.st.Head(forged.Owner); err == nil {
			t.Errorf("%s stored the forged block", n.name)
		}
		for _, k := range []ledger.Key{other1.Owner, other2.Owner} {
			if frozen, _ := n.st.Frozen(k); frozen {
				t.Errorf("%s froze %s on a proof that is no fork", n.name, k)
			}
		}
	}
	if s := behind.r.Stats(); s.Rejected != 0 {
		t.Errorf("garbage was relayed to the second node: %+v", s)
	}
}

// rawRequest writes p on a new sync stream to n and returns what n answers
// (at most 1 MiB) and how the stream ended.
func rawRequest(t *testing.T, h host.Host, n *node, p []byte) ([]byte, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	s, err := h.NewStream(ctx, n.h.ID(), ProtocolID)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Reset()
	s.SetDeadline(time.Now().Add(5 * time.Second))
	go func() {
		s.Write(p) // may fail once the node has answered and closed
		s.CloseWrite()
	}()
	return io.ReadAll(io.LimitReader(s, 1<<20))
}

// Garbage on the sync protocol is answered with a refusal or a reset, a
// slow requester is cut off at the serve timeout, requests over the limit
// are told the node is busy, and the node goes on answering.
func TestGarbageOnSync(t *testing.T) {
	nodes := mesh(t, 2, []Option{WithAntiEntropy(0, 0), WithTimeouts(5*time.Second, 300*time.Millisecond), WithMaxServing(1)})
	victim := nodes[0]
	appendAndPublish(t, victim, 3)
	waitSameHeads(t, 10*time.Second, 3, nodes...)
	a := newAttacker(t)
	a.connect(t, victim)

	huge := bytes.Repeat([]byte{0xff}, 1<<20)
	for name, p := range map[string][]byte{
		"text":          []byte("GET / HTTP/1.1\r\nHost: imece\r\n\r\n"),
		"oversized":     huge,
		"heads limit 0": request{kind: kindHeads}.encode(),
		"unknown kind":  {wireVersion, 77, 1, 2, 3},
	} {
		got, _ := rawRequest(t, a.h, victim, p)
		if len(got) == 0 || status(got[0]) != statusBadRequest {
			t.Errorf("%s: answered %x, want a bad-request status", name, got[:min(len(got), 8)])
		}
	}
	// A range asking for more than the maximum gets at most the maximum.
	got, err := rawRequest(t, a.h, victim, request{kind: kindRange, owner: victim.key(), from: 1, max: 1 << 31}.encode())
	if err != nil {
		t.Fatal(err)
	}
	if bs, err := readBlocks(bytes.NewReader(got), victim.key(), 1, MaxRangeBlocks); err != nil || len(bs) != 3 {
		t.Errorf("range answer: %d blocks, %v", len(bs), err)
	}

	// A requester that never finishes holds the only slot until the serve
	// timeout; meanwhile another request is told the node is busy.
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	slow, err := a.h.NewStream(ctx, victim.h.ID(), ProtocolID)
	if err != nil {
		t.Fatal(err)
	}
	defer slow.Reset()
	slow.Write([]byte{wireVersion})
	waitFor(t, 5*time.Second, func() (bool, string) {
		got, _ := rawRequest(t, a.h, victim, request{kind: kindProof, owner: victim.key()}.encode())
		return len(got) == 1 && status(got[0]) == statusBusy, "a second request is not told the node is busy"
	})
	start := time.Now()
	slow.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.ReadAll(slow); err == nil && time.Since(start) > 2*time.Second {
		t.Error("the slow request was not cut off")
	}

	// The node still serves a real peer, once the slot is free.
	waitFor(t, 5*time.Second, func() (bool, string) {
		err := nodes[1].r.SyncWith(context.Background(), victim.h.ID())
		return err == nil, fmt.Sprintf("SyncWith after the garbage: %v", err)
	})
	if s := victim.r.Stats(); s.BadRequests < 4 || s.Busy == 0 {
		t.Errorf("stats %+v: want 4 bad requests and a busy answer", s)
	}
}

// A peer that answers with garbage — more heads than asked, blocks of
// another chain, a block that breaks its chain — makes SyncWith fail with
// ErrProtocol or store nothing; the node stores nothing of it.
func TestLyingPeer(t *testing.T) {
	victim := newNode(t, "victim", []Option{WithAntiEntropy(0, 0)})
	a := newAttacker(t)
	liar := chainOf(testKey("liar"), nil, 4, 0)
	someone := chainOf(testKey("someone"), nil, 2, 0)
	var mu sync.Mutex
	answers := map[requestKind]func(w *bufio.Writer, q request){}
	answer := func(k requestKind, fn func(w *bufio.Writer, q request)) {
		mu.Lock()
		defer mu.Unlock()
		answers[k] = fn
	}
	a.h.SetStreamHandler(ProtocolID, func(s network.Stream) {
		defer s.Close()
		q, err := readRequest(s)
		if err != nil {
			s.Reset()
			return
		}
		w := bufio.NewWriter(s)
		mu.Lock()
		fn := answers[q.kind]
		mu.Unlock()
		if fn == nil {
			writeStatus(w, statusBusy)
			return
		}
		fn(w, q)
		w.Flush()
	})
	a.connect(t, victim)
	ctx := context.Background()

	// More heads than asked for.
	answer(kindHeads, func(w *bufio.Writer, q request) {
		w.WriteByte(byte(statusOK))
		w.Write(binary.LittleEndian.AppendUint32(nil, q.max+1))
		w.WriteByte(0)
	})
	if err := victim.r.SyncWith(ctx, a.h.ID()); !errors.Is(err, ErrProtocol) {
		t.Errorf("too many heads: %v", err)
	}

	// Heads claim the liar's chain is 4 long; the ranges bring other things.
	answer(kindHeads, func(w *bufio.Writer, q request) {
		writeHeads(w, []headEntry{{owner: liar[0].Owner, seq: 4, id: liar[3].ID()}}, false)
	})
	for name, blocks := range map[string][]*ledger.Block{
		"another chain":  someone,
		"skipping ahead": liar[1:],
		"badly signed":   {func() *ledger.Block { b := *liar[0]; b.Sig[3] ^= 1; return &b }()},
	} {
		answer(kindRange, func(w *bufio.Writer, q request) { writeBlocks(w, encodedChain(blocks)) })
		before := victim.r.Stats().PullErrors
		if err := victim.r.SyncWith(ctx, a.h.ID()); err != nil {
			t.Errorf("%s: SyncWith: %v", name, err)
		}
		if victim.r.Stats().PullErrors <= before {
			t.Errorf("%s: the pull did not fail", name)
		}
		if _, err := victim.st.Head(liar[0].Owner); err == nil {
			t.Errorf("%s: something of the liar's chain was stored", name)
		}
	}
	if _, err := victim.st.Head(someone[0].Owner); err == nil {
		t.Error("a chain that was not asked for was stored")
	}
}
