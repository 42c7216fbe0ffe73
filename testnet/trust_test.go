package testnet

import (
	"context"
	"testing"
	"time"

	"github.com/imece/imece/dht"
	"github.com/imece/imece/node"
	"github.com/imece/imece/pipeline"
)

// TestFailedAuditCutsRoutingShare: a client that audits every hop catches a
// replica returning random activations, signs the verdicts into its ledger,
// and from then on its plans leave that replica out.
func TestFailedAuditCutsRoutingShare(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	var width int
	n, err := Start(ctx, WithSplit([2]int{0, 2}, [2]int{2, 5}, [2]int{2, 5}, [2]int{2, 5}),
		WithVolunteerOptions(func(i int) []node.Option {
			if i != 2 {
				return nil
			}
			return []node.Option{node.WithServerOptions(pipeline.WithFault(pipeline.Fault{
				Corrupt: func(rows []float32, pos int) { pipeline.RandomActivations(1, width)(rows, pos) },
			}))}
		}))
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	width = n.Model.Config.Dim
	faulty := n.Volunteers[2].ID()
	c, err := n.Client(ctx, node.WithAudits(1))
	if err != nil {
		t.Fatal(err)
	}
	m, err := c.OpenModel(ctx, n.ModelID, node.DefaultCoverageWait)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	key, err := pipeline.PeerKey(faulty)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := m.Cov.WaitFor(ctx, func(s dht.Snapshot) bool { _, ok := s.Records[faulty]; return ok }); err != nil {
		t.Fatal(err)
	}
	// Until the faulty replica has served and been audited, some sessions
	// may go through it (with wrong text); the planner prefers it only by
	// chance, so the honest ones are left out until it has been judged.
	honest := []string{string(n.Volunteers[1].ID()), string(n.Volunteers[3].ID())}
	for i := 0; ; i++ {
		if i == 10 {
			t.Fatal("the faulty replica's reliability never fell")
		}
		_, err := m.Generate(ctx, pipeline.Request{Prompt: "Once upon a time", MaxTokens: 8},
			pipeline.WithPlanOptions(pipeline.WithoutPeers(honest...)))
		if err != nil {
			t.Fatal(err)
		}
		time.Sleep(200 * time.Millisecond) // the session's close reaches the auditor
		if err := c.WaitAudits(ctx); err != nil {
			t.Fatal(err)
		}
		tr, err := c.Ledger().Trust(key)
		if err != nil {
			t.Fatal(err)
		}
		if tr.Reliability < 1000 {
			t.Logf("after %d sessions the faulty replica's reliability is %d milli", i+1, tr.Reliability)
			break
		}
	}
	for i := range 3 {
		var route []pipeline.Hop
		_, err := m.Generate(ctx, pipeline.Request{Prompt: "Once upon a time", MaxTokens: 8},
			pipeline.WithRouteObserver(func(r []pipeline.Hop) { route = r }))
		if err != nil {
			t.Fatal(err)
		}
		for _, h := range route {
			if h.Peer == string(faulty) {
				t.Fatalf("generation %d: chain %s still runs through the replica that failed its audits", i, pipeline.FormatRoute(route))
			}
		}
	}
}
