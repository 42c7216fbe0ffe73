package testnet

import (
	"context"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/imece/imece/pipeline"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m,
		// libp2p and its dependencies keep a few process-wide workers.
		goleak.IgnoreAnyFunction("github.com/ipfs/go-log/v2/writer.(*MirrorWriter).logRoutine"),
		goleak.IgnoreAnyFunction("go.opencensus.io/stats/view.(*worker).start"),
		goleak.IgnoreAnyFunction("github.com/libp2p/go-libp2p/p2p/transport/quicreuse.(*reuse).gc"),
	)
}

// The reference continuation of stories260K (../shared/models/README.md).
const reference = `, there was a little girl named Lily. She loved to play outside in the park. One day, she saw a big, red ball. She wanted to play with it, but it was too high.
Lily's mom said, "Lily, let's go to the park." Lily was sad and didn't know what to do. She said, "I want to play with your ball, but I can't find`

func generate(t *testing.T, n *Network) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	var out strings.Builder
	_, err := n.Generate(ctx, pipeline.Request{
		Prompt: "Once upon a time", MaxTokens: 124,
		OnText: func(s string) error { out.WriteString(s); return nil },
	})
	if err != nil {
		t.Fatal(err)
	}
	return out.String()
}

// TestInProcessNetwork: stories260K split across three nodes and across five (one
// layer each) gives the reference text, found through the DHT and gossip by a
// light client that holds no weights.
func TestInProcessNetwork(t *testing.T) {
	for _, nodes := range []int{3, 5} {
		t.Run(strings.Repeat("node", 1)+string(rune('0'+nodes)), func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
			defer cancel()
			n, err := Start(ctx, WithNodes(nodes))
			if err != nil {
				t.Fatal(err)
			}
			defer n.Close()
			if got := generate(t, n); got != reference {
				t.Fatalf("got %q", got)
			}
		})
	}
}

// TestLateJoinerAndMissingSpan: with layer 4 unserved the client fails with an
// error naming it; a node that joins later serving it is found and used.
func TestLateJoinerAndMissingSpan(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	n, err := Start(ctx, WithSplit([2]int{0, 2}, [2]int{2, 4}))
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	c, err := n.Client(ctx)
	if err != nil {
		t.Fatal(err)
	}
	_, err = c.OpenModel(ctx, n.ModelID, 2*time.Second)
	if err == nil || !strings.Contains(err.Error(), "[4, 5)") {
		t.Fatalf("err = %v, want one naming layers [4, 5)", err)
	}
	late, err := n.AddVolunteer(ctx, 4, 5)
	if err != nil {
		t.Fatal(err)
	}
	m, err := c.OpenModel(ctx, n.ModelID, 20*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	var out strings.Builder
	if _, err := m.Generate(ctx, pipeline.Request{Prompt: "Once upon a time", MaxTokens: 124,
		OnText: func(s string) error { out.WriteString(s); return nil }}); err != nil {
		t.Fatal(err)
	}
	if out.String() != reference {
		t.Fatalf("got %q", out.String())
	}
	if late.StageServer().Served() != 1 {
		t.Fatalf("the late joiner served %d sessions, want 1", late.StageServer().Served())
	}
	for deadline := time.Now().Add(5 * time.Second); late.StageServer().Sessions() != 0; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the session stayed open on the late joiner after the client closed it")
		}
	}
}

// TestReplicaCrash kills (closes the host of, without withdrawing) the replica a
// chain uses mid-generation; the client fails over to the other replica and the
// text is exact.
func TestReplicaCrash(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	n, err := Start(ctx, WithSplit([2]int{0, 2}, [2]int{2, 4}, [2]int{2, 4}, [2]int{4, 5}))
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	c, err := n.Client(ctx)
	if err != nil {
		t.Fatal(err)
	}
	m, err := c.OpenModel(ctx, n.ModelID, 20*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	var out strings.Builder
	pieces, killed := 0, false
	_, err = m.Generate(ctx, pipeline.Request{Prompt: "Once upon a time", MaxTokens: 124,
		OnText: func(s string) error {
			out.WriteString(s)
			if pieces++; pieces == 50 {
				for _, v := range n.Volunteers[1:3] {
					if v.StageServer().Sessions() > 0 {
						v.Host().Close()
						killed = true
					}
				}
			}
			return nil
		}})
	if err != nil {
		t.Fatal(err)
	}
	if !killed {
		t.Fatal("neither replica served the session")
	}
	if out.String() != reference {
		t.Fatalf("after the crash got %q", out.String())
	}
}

// TestAutoLayers: volunteers started with --layers auto, each fitting two layers,
// spread over the model where coverage is lowest, so three of them cover all five
// layers, and a fourth doubles the weakest part.
func TestAutoLayers(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	n, err := Start(ctx, WithNodes(4), WithAutoLayers(2))
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	var got []string
	for _, v := range n.Volunteers {
		_, r, _ := v.Serving()
		got = append(got, r.String())
	}
	// An empty network fills from layer 0, then the uncovered layers come next.
	// Where the fourth goes depends on the throughputs measured, so only its
	// size is fixed.
	want := []string{"[0, 2)", "[2, 4)", "[3, 5)"}
	if strings.Join(got[:3], " ") != strings.Join(want, " ") {
		t.Fatalf("chosen layers %v, want the first three %v", got, want)
	}
	if _, r, _ := n.Volunteers[3].Serving(); r.Last-r.First != 2 {
		t.Fatalf("fourth node serves %v, want two layers", r)
	}
	if out := generate(t, n); out != reference {
		t.Fatalf("got %q", out)
	}
}
