package testnet

import (
	"context"
	"testing"
	"time"

	"github.com/imece/imece/assets"
	"github.com/imece/imece/node"
	"github.com/imece/imece/pipeline"
	"github.com/imece/imece/pipeline/model"
)

// TestScheduledCanaries: a volunteer that sends canaries on its own schedule
// catches a replica that returns random activations, and its chain records
// the verdict: the replica's reliability falls in the volunteer's view, the
// honest replica's does not.
func TestScheduledCanaries(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	// The canaries start as soon as the watcher serves: the fault's width must
	// be known before the network starts.
	m, err := model.FromGGUF(assets.DefaultModel)
	if err != nil {
		t.Fatal(err)
	}
	width := m.Config.Dim
	m.Close()
	const watcher, faulty, honest = 0, 2, 3
	n, err := Start(ctx, WithSplit([2]int{0, 2}, [2]int{0, 2}, [2]int{2, 5}, [2]int{2, 5}),
		WithVolunteerOptions(func(i int) []node.Option {
			switch i {
			case watcher:
				// Audits of sampled hops off: only canaries judge.
				return []node.Option{node.WithAudits(1e-9), node.WithCanaries(100 * time.Millisecond)}
			case faulty:
				return []node.Option{node.WithServerOptions(pipeline.WithFault(pipeline.Fault{
					Corrupt: func(rows []float32, pos int) { pipeline.RandomActivations(1, width)(rows, pos) },
				}))}
			}
			return nil
		}))
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	w := n.Volunteers[watcher]
	bad, err := pipeline.PeerKey(n.Volunteers[faulty].ID())
	if err != nil {
		t.Fatal(err)
	}
	good, err := pipeline.PeerKey(n.Volunteers[honest].ID())
	if err != nil {
		t.Fatal(err)
	}
	for {
		tr, err := w.Ledger().Trust(bad)
		if err != nil {
			t.Fatal(err)
		}
		if tr.Reliability < 1000 {
			t.Logf("the faulty replica's reliability in the canary sender's view: %d milli", tr.Reliability)
			break
		}
		select {
		case <-ctx.Done():
			t.Fatal("no canary caught the faulty replica")
		case <-time.After(100 * time.Millisecond):
		}
	}
	if tr, err := w.Ledger().Trust(good); err != nil || tr.Reliability != 1000 {
		t.Fatalf("honest replica: %+v, %v", tr, err)
	}
}
