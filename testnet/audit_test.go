package testnet

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/imece/imece/assets"
	"github.com/imece/imece/dht"
	"github.com/imece/imece/kernels"
	"github.com/imece/imece/node"
	"github.com/imece/imece/pipeline"
	"github.com/imece/imece/pipeline/model"
	"github.com/imece/imece/pipeline/verify"
)

// TestAuditDetection is the detection drill of pipeline/verify/doc.go: twelve
// volunteers serve stories260K, four replicas of each of three spans, and one
// replica of each span is faulty in its own way: random activations on the
// first hop, a skipped layer in the middle, Q4_0 weights (while claiming the
// F32 model) on the last. A client generates through chains that take each
// replica in turn, audits a share of the hops with the other replicas as
// auditors, and finally sends the stories260K canary through a chain with
// each faulty node. Every fault must be detected and no honest node failed;
// -v prints the table.
func TestAuditDetection(t *testing.T) {
	const (
		sessions  = 40
		tokens    = 16
		auditRate = 0.5
	)
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	m, err := model.FromGGUF(assets.DefaultModel)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	skipped, err := pipeline.SkipLayer(m, 3)
	if err != nil {
		t.Fatal(err)
	}
	q4, err := pipeline.Requantize(m, kernels.Q4_0)
	if err != nil {
		t.Fatal(err)
	}
	spans := [][2]int{{0, 2}, {2, 4}, {4, 5}}
	const replicas = 4
	kinds := []struct {
		name  string
		fault pipeline.Fault
	}{
		{"random activations", pipeline.Fault{Corrupt: pipeline.RandomActivations(7, m.Config.Dim)}},
		{"skipped layer 3", pipeline.Fault{Model: skipped}},
		{"Q4_0 weights as F32", pipeline.Fault{Model: q4}},
	}
	// Volunteer s*replicas+r serves span s; replica 0 of each span is faulty.
	var split [][2]int
	for _, sp := range spans {
		for range replicas {
			split = append(split, sp)
		}
	}
	n, err := Start(ctx, WithModel(m), WithSplit(split...), WithThreads(1),
		WithVolunteerOptions(func(i int) []node.Option {
			if i%replicas != 0 {
				return nil
			}
			return []node.Option{node.WithServerOptions(pipeline.WithFault(kinds[i/replicas].fault))}
		}))
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	c, err := n.Client(ctx)
	if err != nil {
		t.Fatal(err)
	}
	om, err := c.OpenModel(ctx, n.ModelID, node.DefaultCoverageWait)
	if err != nil {
		t.Fatal(err)
	}
	defer om.Close()
	// Every replica must be known before the first audit needs it.
	if _, err := om.Cov.WaitFor(ctx, func(s dht.Snapshot) bool { return len(s.Records) == len(split) }); err != nil {
		t.Fatalf("coverage: %v", err)
	}

	var mu sync.Mutex
	var got []verify.Result
	a, err := pipeline.NewAuditor(c.Host(), pipeline.WithAuditRate(auditRate), pipeline.WithAuditorLogger(slog.New(slog.DiscardHandler)), pipeline.WithAuditSink(func(r verify.Result) {
		mu.Lock()
		got = append(got, r)
		mu.Unlock()
	}))
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	keys := map[[32]byte]int{} // subject key → volunteer
	for i, v := range n.Volunteers {
		raw, err := v.Host().Peerstore().PubKey(v.ID()).Raw()
		if err != nil {
			t.Fatal(err)
		}
		keys[[32]byte(raw)] = i
	}
	type tally struct {
		served, audited, failed int
		firstFail               int // sessions served until the first failure, 0: none
		canary                  string
	}
	stats := make([]tally, len(split))
	start := time.Now()
	for s := range sessions {
		// Session s takes replica (s+k) mod 4 of span k: every replica serves
		// a quarter of the sessions, the faulty ones in different sessions.
		var without []string
		chain := map[int]bool{}
		for k := range spans {
			for r := range replicas {
				v := k*replicas + r
				if r == (s+k)%replicas {
					chain[v] = true
					stats[v].served++
				} else {
					without = append(without, string(n.Volunteers[v].ID()))
				}
			}
		}
		mu.Lock()
		got = got[:0]
		mu.Unlock()
		_, err := om.Generate(ctx, pipeline.Request{Prompt: "Once upon a time", MaxTokens: tokens},
			pipeline.WithAuditor(a), pipeline.WithPlanOptions(pipeline.WithoutPeers(without...)))
		if err != nil {
			t.Fatalf("session %d: %v", s, err)
		}
		if err := a.Wait(ctx); err != nil {
			t.Fatal(err)
		}
		mu.Lock()
		for _, r := range got {
			v, ok := keys[r.Subject]
			if !ok || !chain[v] {
				t.Errorf("session %d: result for volunteer %d outside the chain", s, v)
				continue
			}
			stats[v].audited++
			if r.Verdict == verify.Fail {
				stats[v].failed++
				if stats[v].firstFail == 0 {
					stats[v].firstFail = stats[v].served
				}
			}
		}
		mu.Unlock()
	}
	elapsed := time.Since(start)

	// The canary through a chain with each faulty volunteer.
	canary, err := pipeline.StoriesCanary(n.backend)
	if err != nil {
		t.Fatal(err)
	}
	for k := range spans {
		var without []string
		for v := range split {
			if v/replicas != k && v%replicas == 0 || v/replicas == k && v%replicas != 0 {
				without = append(without, string(n.Volunteers[v].ID()))
			}
		}
		mu.Lock()
		got = got[:0]
		mu.Unlock()
		r, err := om.Opener(pipeline.WithAuditor(a), pipeline.WithPlanOptions(pipeline.WithoutPeers(without...)))(ctx, len(canary.Prompt)+len(canary.Want))
		if err != nil {
			t.Fatal(err)
		}
		div, err := pipeline.RunCanary(ctx, r.(*pipeline.Remote), canary)
		r.(*pipeline.Remote).Close()
		if err != nil {
			t.Fatal(err)
		}
		if err := a.Wait(ctx); err != nil {
			t.Fatal(err)
		}
		faulty := k * replicas
		stats[faulty].canary = "passed"
		if div >= 0 {
			stats[faulty].canary = fmt.Sprintf("diverged at token %d", div)
		}
		mu.Lock()
		for _, r := range got {
			if r.Check != verify.CheckCanary || r.Verdict != verify.Fail {
				continue
			}
			if v := keys[r.Subject]; v != faulty {
				t.Errorf("canary failure of %s attributed to honest volunteer %d", kinds[k].name, v)
			} else {
				stats[faulty].canary += ", attributed"
			}
		}
		mu.Unlock()
	}

	var b strings.Builder
	fmt.Fprintf(&b, "%d sessions of %d tokens, audit rate %.2f, %v\n", sessions, tokens, auditRate, elapsed.Round(time.Millisecond))
	fmt.Fprintf(&b, "%-22s %6s %7s %6s %9s %11s  %s\n", "volunteer", "served", "audited", "failed", "detection", "sessions to", "canary")
	fmt.Fprintf(&b, "%-22s %6s %7s %6s %9s %11s\n", "", "", "", "", "rate", "detection")
	var honest tally
	for k, kind := range kinds {
		st := stats[k*replicas]
		rate := 0.0
		if st.audited > 0 {
			rate = float64(st.failed) / float64(st.audited)
		}
		fmt.Fprintf(&b, "%-22s %6d %7d %6d %8.0f%% %11d  %s\n", kind.name, st.served, st.audited, st.failed, 100*rate, st.firstFail, st.canary)
		if st.failed == 0 || st.failed != st.audited {
			t.Errorf("%s: %d of %d audits failed", kind.name, st.failed, st.audited)
		}
		if !strings.Contains(st.canary, "attributed") {
			t.Errorf("%s: canary %q", kind.name, st.canary)
		}
		for r := 1; r < replicas; r++ {
			h := stats[k*replicas+r]
			honest.served += h.served
			honest.audited += h.audited
			honest.failed += h.failed
		}
	}
	fmt.Fprintf(&b, "%-22s %6d %7d %6d %8.0f%% (false positives)\n", "honest (9 volunteers)", honest.served, honest.audited, honest.failed,
		100*float64(honest.failed)/float64(max(honest.audited, 1)))
	t.Log("\n" + b.String())
	if honest.failed != 0 || honest.audited == 0 {
		t.Errorf("honest volunteers: %d of %d audits failed", honest.failed, honest.audited)
	}
}
