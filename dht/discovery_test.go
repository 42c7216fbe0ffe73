package dht

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/ipfs/go-cid"
	"github.com/libp2p/go-libp2p"
	pubsub "github.com/libp2p/go-libp2p-pubsub"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/peer"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// Timings of the network tests: records live 3 s and are re-announced every
// second; the periodic DHT lookup is a minute away, so what a watcher sees
// within seconds after its first lookup came by gossip (or expiry, or
// disconnect detection).
var testTimings = []Option{
	WithRecordTTL(3*time.Second, time.Second),
	WithRefreshInterval(time.Minute),
	WithQueryTimeout(5 * time.Second),
	WithMinUpdateInterval(100 * time.Millisecond),
}

const testLayers = 6

// testNet is a few in-process hosts on loopback around one bootstrap server.
type testNet struct {
	t     *testing.T
	ctx   context.Context
	boot  peer.AddrInfo
	model cid.Cid
}

func newTestNet(t *testing.T) *testNet {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	n := &testNet{t: t, ctx: ctx, model: testCID(t, "model")}
	h, d := n.node("boot", ModeServer, false)
	_ = d
	n.boot = peer.AddrInfo{ID: h.ID(), Addrs: h.Addrs()}
	return n
}

func newHost(t *testing.T) host.Host {
	t.Helper()
	h, err := libp2p.New(libp2p.ListenAddrStrings("/ip4/127.0.0.1/tcp/0"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = h.Close() })
	return h
}

// node starts a host and its Discovery, bootstrapped unless it is the
// bootstrap node itself.
func (n *testNet) node(name string, mode Mode, bootstrap bool, opts ...Option) (host.Host, *Discovery) {
	t := n.t
	t.Helper()
	h := newHost(t)
	all := append(slices.Clone(testTimings), WithMode(mode), WithLogger(testLogger(t, name)))
	if bootstrap {
		all = append(all, WithBootstrapPeers(n.boot))
	}
	d, err := New(h, append(all, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := d.Close(); err != nil {
			t.Error(err)
		}
	})
	if err := d.Bootstrap(n.ctx); err != nil {
		t.Fatal(err)
	}
	return h, d
}

// announce makes d serve [first, last) of the test model.
func (n *testNet) announce(d *Discovery, first, last uint32) {
	n.t.Helper()
	var layers []cid.Cid
	for i := first; i < last; i++ {
		layers = append(layers, testCID(n.t, fmt.Sprintf("model/%d", i)))
	}
	rec := Record{
		Models:     []ServedModel{{Model: n.model, Layers: testLayers, First: first, Last: last, Throughput: 3000, Activations: ActivationsF32}},
		Multiplier: 1000,
		FreeSlots:  4,
	}
	if err := d.Announce(n.ctx, rec, map[cid.Cid][]cid.Cid{n.model: layers}); err != nil {
		n.t.Fatalf("announce: %v", err)
	}
}

func (n *testNet) watch(d *Discovery) *Coverage {
	n.t.Helper()
	c, err := d.Watch(n.ctx, n.model, testLayers)
	if err != nil {
		n.t.Fatal(err)
	}
	n.t.Cleanup(func() { _ = c.Close() })
	return c
}

// waitFor waits up to limit for pred and reports how long it took.
func waitFor(t *testing.T, c *Coverage, limit time.Duration, what string, pred func(Snapshot) bool) time.Duration {
	t.Helper()
	return waitSince(t, time.Now(), c, limit, what, pred)
}

// waitSince waits up to limit for pred and reports how long it took since start
// (when the event began: an announcement, a kill).
func waitSince(t *testing.T, start time.Time, c *Coverage, limit time.Duration, what string, pred func(Snapshot) bool) time.Duration {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), limit)
	defer cancel()
	if _, err := c.WaitFor(ctx, pred); err != nil {
		t.Fatalf("%s: not seen within %v: %v", what, limit, err)
	}
	took := time.Since(start)
	t.Logf("%s: seen after %v", what, took.Round(time.Millisecond))
	return took
}

func has(p peer.ID) func(Snapshot) bool {
	return func(s Snapshot) bool { _, ok := s.Records[p]; return ok }
}

func hasNot(p peer.ID) func(Snapshot) bool {
	return func(s Snapshot) bool { _, ok := s.Records[p]; return !ok }
}

func refreshed(s Snapshot) bool { return !s.Refreshed.IsZero() }

// TestMeshJoinsAndLeaves: an announcement is found by a client that watches
// later (through the DHT); a late joiner, an update and a withdrawal reach it by
// gossip within seconds; a killed node that the client was using disappears by
// disconnect detection.
func TestMeshJoinsAndLeaves(t *testing.T) {
	n := newTestNet(t)
	ha, a := n.node("a", ModeServer, true)
	hb, b := n.node("b", ModeServer, true)
	n.node("d", ModeServer, true) // a DHT server that serves nothing
	_, client := n.node("client", ModeClient, true)

	n.announce(a, 0, 3)
	cov := n.watch(client)
	waitFor(t, cov, 5*time.Second, "node announced before the watch", has(ha.ID()))
	waitFor(t, cov, 5*time.Second, "first DHT lookup", refreshed)

	start := time.Now()
	n.announce(b, 3, 6)
	if took := waitSince(t, start, cov, 5*time.Second, "late joiner (from its Announce call)", has(hb.ID())); took > 3*time.Second {
		t.Errorf("late joiner took %v", took)
	}
	s := cov.Snapshot()
	if !s.Covered() || len(s.Serving[4]) != 1 || s.Serving[4][0].Peer != hb.ID() || s.Serving[4][0].Rate() != 1_000_000 {
		t.Fatalf("coverage %+v", s.Serving)
	}

	start = time.Now()
	if err := a.UpdateRecord(func(r *Record) { r.Load = 500 }); err != nil {
		t.Fatal(err)
	}
	waitSince(t, start, cov, 3*time.Second, "load update", func(s Snapshot) bool {
		r, ok := s.Records[ha.ID()]
		return ok && r.Load == 500
	})

	start = time.Now()
	if err := a.Withdraw(n.ctx); err != nil {
		t.Fatal(err)
	}
	if took := waitSince(t, start, cov, 3*time.Second, "withdrawal (from the Withdraw call)", hasNot(ha.ID())); took > 2*time.Second {
		t.Errorf("withdrawal took %v", took)
	}

	// The client uses b (as the pipeline would), then b dies without a word.
	if err := client.h.Connect(n.ctx, peer.AddrInfo{ID: hb.ID(), Addrs: hb.Addrs()}); err != nil {
		t.Fatal(err)
	}
	killed := time.Now()
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	if err := hb.Close(); err != nil {
		t.Fatal(err)
	}
	if took := waitSince(t, killed, cov, 5*time.Second, "killed node (from the kill)", hasNot(hb.ID())); took >= 3*time.Second {
		t.Errorf("killed node left after %v, no faster than its expiry", took)
	}
	if s := cov.Snapshot(); s.Covered() || len(s.Records) != 0 {
		t.Fatalf("records left: %v", s.Records)
	}
}

// TestKilledNodeExpires: without disconnect detection a node that dies
// silently leaves every view when its record expires.
func TestKilledNodeExpires(t *testing.T) {
	n := newTestNet(t)
	ha, a := n.node("a", ModeServer, true)
	_, client := n.node("client", ModeClient, true, WithDisconnectRecheck(false, 0))
	n.announce(a, 0, 6)
	cov := n.watch(client)
	waitFor(t, cov, 5*time.Second, "node", has(ha.ID()))
	expires := cov.Snapshot().Records[ha.ID()].ExpiresAt()

	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	if err := ha.Close(); err != nil {
		t.Fatal(err)
	}
	killed := time.Now()
	waitSince(t, killed, cov, 6*time.Second, "expiry of killed node (from the kill)", hasNot(ha.ID()))
	if now := time.Now(); now.Before(expires) {
		t.Fatalf("dropped at %v, before its expiry %v", now, expires)
	}
}

// TestLonelyWatcherFindsFirstAnnouncer: a client that watches before anyone
// serves the model finds the first node within seconds, although the periodic
// lookup is a minute away.
func TestLonelyWatcherFindsFirstAnnouncer(t *testing.T) {
	n := newTestNet(t)
	_, client := n.node("client", ModeClient, true)
	cov := n.watch(client)
	waitFor(t, cov, 5*time.Second, "first DHT lookup", refreshed)
	ha, a := n.node("a", ModeServer, true)
	start := time.Now()
	n.announce(a, 0, 6)
	waitSince(t, start, cov, 8*time.Second, "first announcer (from its Announce call)", has(ha.ID()))
}

// TestDHTOnly: a client without gossip finds nodes, their updates and their
// withdrawals through the DHT alone.
func TestDHTOnly(t *testing.T) {
	n := newTestNet(t)
	ha, a := n.node("a", ModeServer, true)
	hb, b := n.node("b", ModeServer, true)
	_, client := n.node("client", ModeClient, true, WithGossip(false))
	n.announce(a, 0, 3)
	cov := n.watch(client)
	waitFor(t, cov, 5*time.Second, "node through the DHT", has(ha.ID()))
	if client.ps != nil {
		t.Fatal("gossip running")
	}

	n.announce(b, 3, 6)
	if err := cov.Refresh(n.ctx); err != nil {
		t.Fatal(err)
	}
	s := cov.Snapshot()
	if _, ok := s.Records[hb.ID()]; !ok || !s.Covered() {
		t.Fatalf("late joiner not found by the DHT: %v", s.Records)
	}

	if err := a.Withdraw(n.ctx); err != nil {
		t.Fatal(err)
	}
	if err := cov.Refresh(n.ctx); err != nil {
		t.Fatal(err)
	}
	if s := cov.Snapshot(); !hasNot(ha.ID())(s) {
		t.Fatal("withdrawal not seen through the DHT")
	}
}

// TestForgedRecordNotPropagated: an attacker connected only to an honest
// relay publishes forged records on the model's topic. The relay rejects them
// and the client behind it never receives them, while a valid record from the
// same attacker goes through the same path.
func TestForgedRecordNotPropagated(t *testing.T) {
	n := newTestNet(t)
	ha, a := n.node("a", ModeServer, true)
	hc, client := n.node("client", ModeClient, true)
	n.announce(a, 0, 6)
	cov := n.watch(client)
	waitFor(t, cov, 5*time.Second, "relay", has(ha.ID()))

	// The attacker: a bare host and GossipSub, no validator, linked to a only.
	hx := newHost(t)
	xctx, xcancel := context.WithCancel(n.ctx)
	defer xcancel()
	psx, err := pubsub.NewGossipSub(xctx, hx, pubsub.WithFloodPublish(true))
	if err != nil {
		t.Fatal(err)
	}
	topic, err := psx.Join(ModelTopic(n.model))
	if err != nil {
		t.Fatal(err)
	}
	sub, err := topic.Subscribe()
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		sub.Cancel()
		xcancel()
	}()
	if err := hx.Connect(n.ctx, peer.AddrInfo{ID: ha.ID(), Addrs: ha.Addrs()}); err != nil {
		t.Fatal(err)
	}
	relay := a.models[n.model]
	deadline := time.Now().Add(5 * time.Second)
	for !slices.Contains(relay.topic.ListPeers(), hx.ID()) || !slices.Contains(relay.topic.ListPeers(), hc.ID()) ||
		!slices.Contains(topic.ListPeers(), ha.ID()) {
		if time.Now().After(deadline) {
			t.Fatal("topic peers not connected")
		}
		time.Sleep(20 * time.Millisecond)
	}

	xkey := hx.Peerstore().PrivKey(hx.ID())
	model := n.model
	// 1. A record claiming to be a's, signed by the attacker.
	impostor := Record{Peer: ha.ID(), Models: []ServedModel{{Model: model, Layers: testLayers, First: 0, Last: 6, Throughput: MaxThroughput}},
		Seq: 1 << 62, Expires: time.Now().Add(time.Minute).Unix()}
	impostor.Signature = signWithoutCheck(t, xkey, &impostor)
	// 2. The attacker's own record, tampered after signing.
	own := Record{Peer: hx.ID(), Models: []ServedModel{{Model: model, Layers: testLayers, First: 0, Last: 6, Throughput: 1}},
		Seq: 1, Expires: time.Now().Add(time.Minute).Unix()}
	if err := own.Sign(xkey); err != nil {
		t.Fatal(err)
	}
	tampered := own
	tampered.Models = []ServedModel{own.Models[0]}
	tampered.Models[0].Throughput = MaxThroughput
	// 3. Not a record at all.
	for _, r := range []Record{impostor, tampered} {
		b, err := r.Marshal()
		if err != nil {
			t.Fatal(err)
		}
		if err := topic.Publish(n.ctx, b); err != nil {
			t.Fatal(err)
		}
	}
	if err := topic.Publish(n.ctx, []byte("garbage")); err != nil {
		t.Fatal(err)
	}
	deadline = time.Now().Add(5 * time.Second)
	for relay.rejected.Load() < 3 {
		if time.Now().After(deadline) {
			t.Fatalf("relay rejected %d of 3 forged messages", relay.rejected.Load())
		}
		time.Sleep(20 * time.Millisecond)
	}

	// A valid record from the attacker takes the same path and arrives.
	b, err := own.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	if err := topic.Publish(n.ctx, b); err != nil {
		t.Fatal(err)
	}
	waitFor(t, cov, 5*time.Second, "valid record through the relay", has(hx.ID()))
	s := cov.Snapshot()
	if got := client.models[n.model].rejected.Load(); got != 0 {
		t.Fatalf("client received %d forged messages", got)
	}
	if r := s.Records[hx.ID()]; r.Models[0].Throughput != 1 {
		t.Fatal("tampered record taken")
	}
	if r := s.Records[ha.ID()]; r.Seq == 1<<62 {
		t.Fatal("impostor record taken")
	}
}

// signWithoutCheck signs r with key whatever r.Peer says, as a forger would.
func signWithoutCheck(t *testing.T, key crypto.PrivKey, r *Record) []byte {
	t.Helper()
	body, err := r.body()
	if err != nil {
		t.Fatal(err)
	}
	sig, err := key.Sign(signedMessage(body))
	if err != nil {
		t.Fatal(err)
	}
	return sig
}

// testLogger logs to the test at debug level when -v is given.
func testLogger(t *testing.T, name string) *slog.Logger {
	if !testing.Verbose() {
		return slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	return slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelInfo})).With("node", name)
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(b []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(b)))
	return len(b), nil
}

// TestDiscoveryMisuse: what a caller can get wrong is refused with the
// documented errors, before anything reaches the network.
func TestDiscoveryMisuse(t *testing.T) {
	rsaKey, _, err := crypto.GenerateRSAKeyPair(2048, rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	hr, err := libp2p.New(libp2p.Identity(rsaKey), libp2p.ListenAddrStrings("/ip4/127.0.0.1/tcp/0"))
	if err != nil {
		t.Fatal(err)
	}
	defer hr.Close()
	if _, err := New(hr); !errors.Is(err, ErrUnsupportedKey) {
		t.Fatalf("RSA host: %v", err)
	}
	h := newHost(t)
	if _, err := New(h, WithRecordTTL(time.Minute, time.Minute)); !errors.Is(err, errBadOption) {
		t.Fatalf("re-announce not under TTL: %v", err)
	}

	n := newTestNet(t)
	_, d := n.node("a", ModeServer, true)
	if err := d.UpdateRecord(func(*Record) {}); !errors.Is(err, ErrNotAnnouncing) {
		t.Fatalf("UpdateRecord before Announce: %v", err)
	}
	rec := Record{Models: []ServedModel{{Model: n.model, Layers: testLayers, First: 0, Last: 2, Throughput: 1}}}
	one := map[cid.Cid][]cid.Cid{n.model: {testCID(t, "l0")}}
	if err := d.Announce(n.ctx, rec, one); !errors.Is(err, ErrMalformed) {
		t.Fatalf("Announce with one layer CID for two layers: %v", err)
	}
	n.announce(d, 0, 2)
	if err := d.UpdateRecord(func(r *Record) { r.Models[0].Last = 3 }); !errors.Is(err, ErrModelsChanged) {
		t.Fatalf("UpdateRecord changing the range: %v", err)
	}
	if err := d.UpdateRecord(func(r *Record) { r.Load = 2000 }); !errors.Is(err, ErrMalformed) {
		t.Fatalf("UpdateRecord with load over 1000: %v", err)
	}
	if _, err := d.Watch(n.ctx, n.model, testLayers+1); !errors.Is(err, ErrLayerMismatch) {
		t.Fatalf("Watch with another layer count: %v", err)
	}
	if err := d.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := d.Watch(n.ctx, n.model, testLayers); !errors.Is(err, ErrClosed) {
		t.Fatalf("Watch after Close: %v", err)
	}
	if err := d.Announce(n.ctx, rec, nil); !errors.Is(err, ErrMalformed) && !errors.Is(err, ErrClosed) {
		t.Fatalf("Announce after Close: %v", err)
	}
}
