package pipeline

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ipfs/go-cid"
	"github.com/libp2p/go-libp2p/core/host"

	"github.com/imece/imece/assets"
	"github.com/imece/imece/pipeline/model"
	"github.com/imece/imece/pipeline/tokenizer"
)

// The reference continuation of stories260K (../shared/models/README.md).
const storiesReference = `, there was a little girl named Lily. She loved to play outside in the park. One day, she saw a big, red ball. She wanted to play with it, but it was too high.
Lily's mom said, "Lily, let's go to the park." Lily was sad and didn't know what to do. She said, "I want to play with your ball, but I can't find`

// mesh is stage servers on loopback hosts in this process, all serving stories260K.
type mesh struct {
	t       *testing.T
	m       *model.Model
	id      cid.Cid
	tok     *tokenizer.Tokenizer
	mu      sync.Mutex
	servers map[string]*meshNode
}

type meshNode struct {
	h     host.Host
	srv   *StageServer
	span  LayerRange
	calls atomic.Int64
}

func newMesh(t *testing.T) *mesh {
	m, err := model.FromGGUF(assets.DefaultModel)
	if err != nil {
		t.Fatal(err)
	}
	id, _ := m.CID()
	tok, _ := TokenizerFor(m)
	return &mesh{t: t, m: m, id: id, tok: tok, servers: map[string]*meshNode{}}
}

func (ms *mesh) serve(first, last int, opts ...ServerOption) *meshNode {
	h := newHost(ms.t)
	srv, err := NewStageServer(h, ms.m, ms.id, newCPU(ms.t), first, last, append([]ServerOption{WithServerLogger(slog.New(slog.DiscardHandler))}, opts...)...)
	if err != nil {
		ms.t.Fatal(err)
	}
	srv.Start()
	ms.t.Cleanup(func() { srv.Close() })
	n := &meshNode{h: h, srv: srv, span: LayerRange{first, last}}
	ms.mu.Lock()
	ms.servers[string(h.ID())] = n
	ms.mu.Unlock()
	return n
}

// peers is a PeerSource listing every stage that has not been stopped; all equal
// in speed, so the planner prefers fewer hops.
func (ms *mesh) peers(ctx context.Context) ([]StagePeer, error) {
	ms.mu.Lock()
	defer ms.mu.Unlock()
	var out []StagePeer
	for p, n := range ms.servers {
		out = append(out, StagePeer{
			Candidate: Candidate{Peer: p, First: n.span.First, Last: n.span.Last, LayerTime: time.Millisecond},
			Addrs:     n.h.Addrs(),
		})
	}
	return out, nil
}

func (ms *mesh) generate(ctx context.Context, client host.Host, prompt string, maxTokens int, onText func(string)) (string, *Remote, error) {
	var remote *Remote
	var text strings.Builder
	open := func(ctx context.Context, maxLen int) (Runner, error) {
		r, err := OpenRemote(ctx, client, ms.id, ms.m.Config.Layers, ms.m.Config.VocabSize, maxLen, ms.peers,
			WithRemoteLogger(slog.New(slog.DiscardHandler)))
		remote = r
		return r, err
	}
	_, err := Generate(ctx, open, ms.tok, Request{
		Prompt: prompt, MaxTokens: maxTokens,
		OnText: func(s string) error {
			text.WriteString(s)
			if onText != nil {
				onText(s)
			}
			return nil
		},
	})
	return text.String(), remote, err
}

// TestMeshReferenceText: stories260K split over three stages, and over five (one
// layer each), gives the reference text exactly.
func TestMeshReferenceText(t *testing.T) {
	for _, cuts := range [][]int{{0, 2, 4, 5}, {0, 1, 2, 3, 4, 5}} {
		t.Run(fmt.Sprint(cuts), func(t *testing.T) {
			ms := newMesh(t)
			for i := 0; i+1 < len(cuts); i++ {
				ms.serve(cuts[i], cuts[i+1])
			}
			ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
			defer cancel()
			got, remote, err := ms.generate(ctx, newHost(t), "Once upon a time", 124, nil)
			if err != nil {
				t.Fatal(err)
			}
			if got != storiesReference {
				t.Fatalf("got %q", got)
			}
			if len(remote.Route()) != 0 {
				t.Fatal("chain still open after generation")
			}
		})
	}
}

// TestMeshFailover kills one of two replicas of the middle span mid-generation; the
// client re-plans around it and the text is still exact.
func TestMeshFailover(t *testing.T) {
	ms := newMesh(t)
	ms.serve(0, 2)
	a := ms.serve(2, 4)
	b := ms.serve(2, 4)
	ms.serve(4, 5)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	client := newHost(t)
	pieces := 0
	var killed atomic.Bool
	got, remote, err := ms.generate(ctx, client, "Once upon a time", 124, func(string) {
		pieces++
		if pieces == 40 && !killed.Load() {
			// Kill whichever replica the chain uses: close its host, as a crash would.
			for _, n := range []*meshNode{a, b} {
				if n.srv.Sessions() > 0 {
					killed.Store(true)
					n.h.Close()
				}
			}
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	if !killed.Load() {
		t.Fatal("no replica was serving the session")
	}
	if got != storiesReference {
		t.Fatalf("after failover got %q", got)
	}
	if remote.Failovers() != 1 {
		t.Fatalf("%d failovers, want 1", remote.Failovers())
	}
}

// TestMeshMissingSpan: with no stage for layer 4 the client fails at once with an
// error naming the layers.
func TestMeshMissingSpan(t *testing.T) {
	ms := newMesh(t)
	ms.serve(0, 2)
	ms.serve(2, 4)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	_, _, err := ms.generate(ctx, newHost(t), "Once upon a time", 10, nil)
	var ue *UncoveredError
	if !errors.As(err, &ue) || !strings.Contains(err.Error(), "[4, 5)") {
		t.Fatalf("err = %v, want an UncoveredError naming [4, 5)", err)
	}
}
