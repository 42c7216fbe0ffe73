package node

import (
	"crypto/rand"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/crypto"

	"github.com/imece/imece/kernels"
	"github.com/imece/imece/ledger"
	"github.com/imece/imece/node/hardware"
	"github.com/imece/imece/pipeline"
	"github.com/imece/imece/pipeline/model"
	"github.com/imece/imece/pipeline/verify"
)

// tinyManifest is a two-layer model small enough to write by hand.
func tinyManifest() *model.Manifest {
	cfg := model.Config{Arch: "llama", VocabSize: 32, Dim: 8, Layers: 2, Heads: 2, KVHeads: 2, HeadDim: 4, FFN: 16,
		NormEps: 1e-5, ContextLength: 64, RopeBase: 10000, RopeDim: 4}
	mf := &model.Manifest{Config: cfg}
	for _, name := range []string{"blk.0.attn_q.weight", "blk.1.attn_q.weight"} {
		mf.Tensors = append(mf.Tensors, model.TensorEntry{Name: name, Shape: []int64{8, 8}, DType: kernels.F32})
	}
	mf.Tensors = append(mf.Tensors, model.TensorEntry{Name: "output.weight", Shape: []int64{8, 32}, DType: kernels.F32})
	return mf
}

func testLedger(t *testing.T, mf *model.Manifest) *Ledger {
	t.Helper()
	key, _, err := crypto.GenerateEd25519Key(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	l, err := openLedger(t.TempDir(), ledger.DefaultGenesis(), key, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.close(); l.st.Close() })
	if err := l.Learn(mf); err != nil {
		t.Fatal(err)
	}
	return l
}

// TestLedgerTrust: a node records its hardware claim once, proposes at the
// multiplier and reliability the chains give it, the client attributes its
// observed time to the hop in its agreement, and refuses a proposal above what
// its own chains say after it recorded a failed audit of the server.
func TestLedgerTrust(t *testing.T) {
	mf := tinyManifest()
	if _, err := ledger.CostOf(mf); err != nil {
		t.Fatal(err)
	}
	srv, cli := testLedger(t, mf), testLedger(t, mf)
	claim := hardware.Claim{Tier: 4, Multiplier: 2400, Fingerprint: [32]byte{1}, MatmulMFLOPS: 40_000_000,
		BandwidthMBps: 600_000, LayerMicros: 400, Backend: "cpu"}
	for range 2 {
		if err := srv.SetHardware(claim); err != nil {
			t.Fatal(err)
		}
	}
	if h, _ := srv.st.Head(srv.Self()); h.Seq != 1 {
		t.Fatalf("the same claim twice made %d blocks", h.Seq)
	}
	if tr, err := srv.Trust(srv.Self()); err != nil || tr.Multiplier != 2400 || tr.Reliability != 1000 || !tr.Claimed {
		t.Fatalf("trust %+v, %v", tr, err)
	}
	hw, _ := srv.st.Get(srv.Self(), 1)
	if err := cli.st.Add(hw); err != nil {
		t.Fatal(err)
	}

	u := pipeline.Usage{Client: cli.Self(), Session: pipeline.SessionID{1}, Model: mf.CID(), First: 0, Last: 2,
		From: 0, To: 10, Results: 1, Tokens: 1, Micros: 30_000, Hops: 1}
	p, err := srv.Propose(u)
	if err != nil {
		t.Fatal(err)
	}
	pb, _ := ledger.DecodeBlock(p)
	if e, _ := pb.Earn(); e.Multiplier != 2400 || e.Reliability != 1000 {
		t.Fatalf("proposed at %d, %d", e.Multiplier, e.Reliability)
	}
	a, err := cli.Agree(p, u)
	if err != nil {
		t.Fatal(err)
	}
	ab, _ := ledger.DecodeBlock(a)
	if s, _ := ab.Spend(); s.Micros != 30_000*3/3 {
		t.Fatalf("attributed %d µs, want the whole chain's 30000 (2 layers + 1 of a 2-layer, 1-hop chain)", s.Micros)
	}
	if err := srv.Agreed(p, a); err != nil {
		t.Fatal(err)
	}

	// The client, which paid the server, records a failed audit of it.
	if err := cli.RecordAudit(verify.Result{Subject: [32]byte(srv.Self()), Session: [16]byte{1}, Model: mf.CID().Bytes(),
		First: 0, Last: 2, Position: 3, Check: verify.CheckRecompute, Verdict: verify.Fail}); err != nil {
		t.Fatal(err)
	}
	time.Sleep(2 * time.Millisecond)
	if tr, _ := cli.Trust(srv.Self()); tr.Reliability != 500 {
		t.Fatalf("reliability after a failed audit %d, want 500", tr.Reliability)
	}
	u.Window, u.From, u.To = 1, 10, 20
	p, err = srv.Propose(u) // the server has not seen the audit
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cli.Agree(p, u); err == nil || !strings.Contains(err.Error(), "reliability 1000") {
		t.Fatalf("a proposal above the chains' reliability agreed: %v", err)
	}
}

func TestAttributeMicros(t *testing.T) {
	for _, tc := range []struct {
		u      pipeline.Usage
		layers int
		want   uint64
	}{
		{pipeline.Usage{First: 0, Last: 10, Micros: 24_000, Hops: 2}, 20, 24_000 * 11 / 22},
		{pipeline.Usage{First: 10, Last: 20, Micros: 24_000, Hops: 2}, 20, 24_000 * 11 / 22},
		{pipeline.Usage{First: 0, Last: 5, Micros: 0, Hops: 1}, 5, 0},
		{pipeline.Usage{First: 0, Last: 1, Micros: 1, Hops: 3}, 100, 1},
	} {
		if got := attributeMicros(tc.u, tc.layers); got != tc.want {
			t.Errorf("%+v of %d layers: %d, want %d", tc.u, tc.layers, got, tc.want)
		}
	}
}
