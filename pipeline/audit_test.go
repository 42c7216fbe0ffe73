package pipeline

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/imece/imece/kernels"
	"github.com/imece/imece/pipeline/tokenizer"
	"github.com/imece/imece/pipeline/verify"
)

// results collects an Auditor's results.
type results struct {
	mu  sync.Mutex
	all []verify.Result
}

func (r *results) add(x verify.Result) { r.mu.Lock(); r.all = append(r.all, x); r.mu.Unlock() }

func (r *results) list() []verify.Result {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]verify.Result(nil), r.all...)
}

func newAuditor(t *testing.T, h host.Host, rate float64) (*Auditor, *results) {
	t.Helper()
	res := &results{}
	a, err := NewAuditor(h, WithAuditRate(rate), WithAuditSink(res.add), WithAuditorLogger(slog.New(slog.DiscardHandler)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { a.Close() })
	return a, res
}

// run generates n tokens through a chain avoiding the peers in without,
// audited by a, and waits for the audits.
func (ms *mesh) run(t *testing.T, client host.Host, a *Auditor, n int, dt ActivationDType, without ...*meshNode) []Hop {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var ex []string
	for _, w := range without {
		ex = append(ex, string(w.h.ID()))
	}
	var route []Hop
	open := func(ctx context.Context, maxLen int) (Runner, error) {
		return OpenRemote(ctx, client, ms.id, ms.m.Config.Layers, ms.m.Config.VocabSize, maxLen, ms.peers,
			WithRemoteLogger(slog.New(slog.DiscardHandler)), WithAuditor(a), WithActivations(dt),
			WithPlanOptions(WithoutPeers(ex...)), WithRouteObserver(func(r []Hop) { route = r }))
	}
	if _, err := Generate(ctx, open, ms.tok, Request{Prompt: "Once upon a time", MaxTokens: n}); err != nil {
		t.Fatal(err)
	}
	if err := a.Wait(ctx); err != nil {
		t.Fatal(err)
	}
	return route
}

func verdicts(rs []verify.Result) map[uint16]verify.Verdict {
	out := map[uint16]verify.Verdict{}
	for _, r := range rs {
		if r.Check == verify.CheckRecompute {
			out[r.Hop] = r.Verdict
		}
	}
	return out
}

// TestAuditHonestChain: with every hop audited, every hop of an honest chain
// passes, in f32 and in f16 transport, and each result names the hop's peer,
// session and layers.
func TestAuditHonestChain(t *testing.T) {
	ms := newMesh(t)
	var spare []*meshNode
	for _, r := range [][2]int{{0, 2}, {2, 4}, {4, 5}} {
		ms.serve(r[0], r[1])
		spare = append(spare, ms.serve(r[0], r[1]))
	}
	for _, dt := range []ActivationDType{ActF32, ActF16} {
		t.Run(dt.String(), func(t *testing.T) {
			client := newHost(t)
			a, res := newAuditor(t, client, 1)
			route := ms.run(t, client, a, 24, dt, spare...)
			got := res.list()
			if len(got) != len(route) {
				t.Fatalf("%d results for %d hops: %+v", len(got), len(route), got)
			}
			for _, r := range got {
				hop := route[r.Hop]
				key, _ := PeerKey(peer.ID(hop.Peer))
				if r.Verdict != verify.Pass || r.Subject != key || int(r.First) != hop.First || int(r.Last) != hop.Last {
					t.Errorf("hop %d: %+v", r.Hop, r)
				}
			}
		})
	}
}

// TestAuditCatchesFaults: a stage with each kind of fault fails its audit; the
// honest hops of the same chain pass.
func TestAuditCatchesFaults(t *testing.T) {
	ms := newMesh(t)
	skip, err := SkipLayer(ms.m, 3)
	if err != nil {
		t.Fatal(err)
	}
	q4, err := Requantize(ms.m, kernels.Q4_0)
	if err != nil {
		t.Fatal(err)
	}
	faults := []struct {
		name  string
		span  [2]int
		fault Fault
	}{
		{"random activations, first hop", [2]int{0, 2}, Fault{Corrupt: RandomActivations(1, ms.m.Config.Dim)}},
		{"skipped layer, middle hop", [2]int{2, 4}, Fault{Model: skip}},
		{"q4_0 weights, last hop", [2]int{4, 5}, Fault{Model: q4}},
	}
	honest := map[[2]int][]*meshNode{}
	for _, r := range [][2]int{{0, 2}, {2, 4}, {4, 5}} {
		honest[r] = []*meshNode{ms.serve(r[0], r[1]), ms.serve(r[0], r[1])}
	}
	for _, f := range faults {
		bad := ms.serve(f.span[0], f.span[1], WithFault(f.fault))
		t.Run(f.name, func(t *testing.T) {
			client := newHost(t)
			a, res := newAuditor(t, client, 1)
			// The chain: the faulty stage and one honest replica of each other span.
			without := []*meshNode{honest[f.span][0], honest[f.span][1]}
			for r, ns := range honest {
				if r != f.span {
					without = append(without, ns[1])
				}
			}
			route := ms.run(t, client, a, 16, ActF32, without...)
			v := verdicts(res.list())
			for h, hop := range route {
				want := verify.Pass
				if hop.Peer == string(bad.h.ID()) {
					want = verify.Fail
				}
				if v[uint16(h)] != want {
					t.Errorf("hop %d %v: %v, want %v", h, LayerRange{hop.First, hop.Last}, v[uint16(h)], want)
				}
			}
		})
		bad.srv.Close()
		ms.mu.Lock()
		delete(ms.servers, string(bad.h.ID()))
		ms.mu.Unlock()
	}
}

// TestEvidenceOnlyForTheClient: a stage hands a session's rows to its client
// only; anyone else is told there is no such session.
func TestEvidenceOnlyForTheClient(t *testing.T) {
	ms := newMesh(t)
	ms.serve(0, 2)
	second := ms.serve(2, 5)
	client := newHost(t)
	a, _ := newAuditor(t, client, 0)
	route := ms.run(t, client, a, 8, ActF32)
	if len(route) != 2 {
		t.Fatalf("route %v", route)
	}
	var id SessionID
	second.srv.evidence.mu.Lock()
	for k := range second.srv.evidence.entries {
		id = k.id
	}
	second.srv.evidence.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	ask := func(h host.Host, req *EvidenceRequest) (AuditMessage, error) {
		connect(t, h, second.h)
		other, _ := newAuditor(t, h, 0)
		return other.exchange(ctx, peer.AddrInfo{ID: second.h.ID()}, req, maxAuditAnswerLen)
	}
	req := &EvidenceRequest{Session: id, Hop: 1, From: 0, To: 4}
	ans, err := ask(client, req)
	if ev, ok := ans.(*Evidence); err != nil || !ok || len(ev.Rows) != 4*ms.m.Config.Dim {
		t.Fatalf("client: %v, %v", ans, err)
	}
	var ae *AuditError
	if _, err := ask(newHost(t), req); !errors.As(err, &ae) || ae.Code != CodeNoSuchSession {
		t.Fatalf("stranger: %v", err)
	}
	req.To = MaxAuditRows + 1
	if _, err := ask(client, req); !errors.As(err, &ae) || ae.Code != CodeBadRequest {
		t.Fatalf("past the rows kept: %v", err)
	}
}

// TestRecomputeRefusals: an auditor refuses what it does not serve and what
// exceeds its bounds, with clear codes.
func TestRecomputeRefusals(t *testing.T) {
	ms := newMesh(t)
	st := ms.serve(2, 4)
	client := newHost(t)
	connect(t, client, st.h)
	a, _ := newAuditor(t, client, 0)
	d := ms.m.Config.Dim
	ok := RecomputeRequest{Model: ms.id.Bytes(), First: 2, Last: 4, Inputs: make([]float32, 3*d), Width: d, Checks: []int{2}, Seed: 5}
	tests := []struct {
		name string
		edit func(r *RecomputeRequest)
		code ErrorCode
	}{
		{"other model", func(r *RecomputeRequest) { r.Model = []byte("x") }, CodeNoSuchModel},
		{"layers not served", func(r *RecomputeRequest) { r.Last = 5 }, CodeRangeNotServed},
		{"wrong width", func(r *RecomputeRequest) { r.Width = d / 2; r.Inputs = make([]float32, 6*d/2) }, CodeBadRequest},
		{"too long", func(r *RecomputeRequest) { r.Inputs = make([]float32, (MaxAuditRows+1)*d) }, CodeBadRequest},
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := ok
			tt.edit(&r)
			_, err := a.exchange(ctx, peer.AddrInfo{ID: st.h.ID()}, &r, maxAuditAnswerLen)
			var ae *AuditError
			if !errors.As(err, &ae) || ae.Code != tt.code {
				t.Fatalf("err = %v, want code %s", err, tt.code)
			}
		})
	}
	ans, err := a.exchange(ctx, peer.AddrInfo{ID: st.h.ID()}, &ok, maxAuditAnswerLen)
	if rec, isRec := ans.(*Recomputed); err != nil || !isRec || len(rec.Hidden) != 1 {
		t.Fatalf("valid request: %v, %v", ans, err)
	}
}

// TestEvidenceStoreBounds: rows past the per-session limit are not kept, a
// session that does not fit the budget keeps nothing until an ended one makes
// room, and ended sessions expire.
func TestEvidenceStoreBounds(t *testing.T) {
	now := time.Unix(1000, 0)
	s := newEvidenceStore(2*MaxAuditRows*4*2, time.Minute)
	s.now = func() time.Time { return now }
	var client [32]byte
	k := func(i byte) sessionKey { return sessionKey{id: SessionID{i}, hop: 1} }
	a := s.open(k(1), client, ActF32, 2, 5000)
	b := s.open(k(2), client, ActF32, 2, 5000)
	if a == nil || b == nil || s.open(k(3), client, ActF32, 2, 5000) != nil {
		t.Fatal("budget of two sessions")
	}
	s.add(a, 0, make([]float32, 2*(MaxAuditRows+10)))
	s.add(a, 5, make([]float32, 2)) // not the next position: ignored
	if got := len(a.rows) / 2; got != MaxAuditRows {
		t.Fatalf("%d rows kept", got)
	}
	s.end(a)
	if s.open(k(3), client, ActF32, 2, 5000) == nil {
		t.Fatal("an ended session did not make room")
	}
	s.end(b)
	now = now.Add(2 * time.Minute)
	if _, e := s.get(k(2), client[:], 0, 1); e == nil || e.Code != CodeNoSuchSession {
		t.Fatalf("expired session answered: %v", e)
	}
}

// TestCanary: the stories260K canary is its reference text; an honest chain
// passes it on every hop, and a chain with a stage that skips a layer diverges,
// failing that hop only, the others cleared by their audits.
func TestCanary(t *testing.T) {
	ms := newMesh(t)
	be := newCPU(t)
	c, err := StoriesCanary(be)
	if err != nil {
		t.Fatal(err)
	}
	if got := ms.tok.DecodeWith(c.Want, tokenizer.DecodeOptions{KeepLeadingSpace: true}); got != storiesReference {
		t.Fatalf("canary continuation %q", got)
	}
	skip, err := SkipLayer(ms.m, 2)
	if err != nil {
		t.Fatal(err)
	}
	ms.serve(0, 2)
	ms.serve(0, 2)
	honest := []*meshNode{ms.serve(2, 4), ms.serve(2, 4)}
	bad := ms.serve(2, 4, WithFault(Fault{Model: skip}))
	ms.serve(4, 5)
	ms.serve(4, 5)
	for _, tc := range []struct {
		name    string
		without []*meshNode
		fail    *meshNode
	}{{"honest", []*meshNode{bad}, nil}, {"skipped layer", honest, bad}} {
		t.Run(tc.name, func(t *testing.T) {
			client := newHost(t)
			a, res := newAuditor(t, client, 0)
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			r, err := OpenRemote(ctx, client, ms.id, ms.m.Config.Layers, ms.m.Config.VocabSize, len(c.Prompt)+len(c.Want), ms.peers,
				WithRemoteLogger(slog.New(slog.DiscardHandler)), WithAuditor(a), WithPlanOptions(WithoutPeers(ids(tc.without)...)))
			if err != nil {
				t.Fatal(err)
			}
			route := r.Route()
			div, err := RunCanary(ctx, r, c)
			if err != nil {
				t.Fatal(err)
			}
			r.Close()
			if err := a.Wait(ctx); err != nil {
				t.Fatal(err)
			}
			if (div >= 0) != (tc.fail != nil) {
				t.Fatalf("diverged at %d", div)
			}
			canary := map[uint16]verify.Verdict{}
			for _, x := range res.list() {
				if x.Check == verify.CheckCanary {
					canary[x.Hop] = x.Verdict
				}
			}
			for h, hop := range route {
				want := verify.Pass
				if tc.fail != nil {
					want = 0 // cleared by its audit: no canary verdict
					if hop.Peer == string(tc.fail.h.ID()) {
						want = verify.Fail
					}
				}
				if canary[uint16(h)] != want {
					t.Errorf("hop %d: canary verdict %v, want %v (all: %+v)", h, canary[uint16(h)], want, res.list())
				}
			}
		})
	}
}

func ids(ns []*meshNode) []string {
	var out []string
	for _, n := range ns {
		out = append(out, string(n.h.ID()))
	}
	return out
}

// TestAuditRateFor: with no base rate, only the hops of the peer under watch
// are audited, every time.
func TestAuditRateFor(t *testing.T) {
	ms := newMesh(t)
	var spare []*meshNode
	for _, r := range [][2]int{{0, 2}, {2, 5}} {
		ms.serve(r[0], r[1])
		spare = append(spare, ms.serve(r[0], r[1]))
	}
	client := newHost(t)
	var watched peer.ID
	var mu sync.Mutex
	res := &results{}
	a, err := NewAuditor(client, WithAuditRate(0), WithAuditSink(res.add), WithAuditorLogger(slog.New(slog.DiscardHandler)),
		WithAuditRateFor(func(p peer.ID) float64 {
			mu.Lock()
			defer mu.Unlock()
			if p == watched {
				return 1
			}
			return 0
		}))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { a.Close() })
	route := ms.run(t, client, a, 4, ActF32, spare...)
	if got := res.list(); len(got) != 0 {
		t.Fatalf("nobody watched, rate 0: %d audits", len(got))
	}
	mu.Lock()
	watched = peer.ID(route[1].Peer)
	mu.Unlock()
	for range 3 {
		ms.run(t, client, a, 4, ActF32, spare...)
	}
	got := verdicts(res.list())
	if len(res.list()) != 3 || len(got) != 1 || got[1] != verify.Pass {
		t.Fatalf("watched hop 1 over 3 sessions: %+v", res.list())
	}
}
