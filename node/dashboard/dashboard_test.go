package dashboard_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/imece/imece/node"
	"github.com/imece/imece/node/dashboard"
	"github.com/imece/imece/node/grid"
	"github.com/imece/imece/pipeline"
	"github.com/imece/imece/testnet"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m,
		goleak.IgnoreAnyFunction("github.com/ipfs/go-log/v2/writer.(*MirrorWriter).logRoutine"),
		goleak.IgnoreAnyFunction("go.opencensus.io/stats/view.(*worker).start"),
		goleak.IgnoreAnyFunction("github.com/libp2p/go-libp2p/p2p/transport/quicreuse.(*reuse).gc"),
	)
}

// The split of the fixture: replicas of the first layers, so that coverage
// differs from layer to layer.
var split = [][2]int{{0, 3}, {0, 2}, {2, 5}}

const wantCoverage = "[2 2 2 1 1]"

const maxTokens = 40

// fixture is a real in-process network after one generation, with a
// dashboard on the light client and on every volunteer.
type fixture struct {
	net    *testnet.Network
	client *node.Node
	// dash[0] is the client's, dash[i+1] volunteer i's.
	dash []*httptest.Server
	res  pipeline.Result
}

func start(t *testing.T) *fixture {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	net, err := testnet.Start(ctx, testnet.WithSplit(split...),
		testnet.WithVolunteerOptions(func(i int) []node.Option {
			// A clean grid on one, a dirty one on another: the page shows P_grid.
			r := grid.Static{Carbon: 120 + 300*float64(i), HasCarbon: true, Renewable: 0.7 - 0.3*float64(i), HasRenewable: true}
			return []node.Option{node.WithGrid(r)}
		}))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { net.Close() })
	f := &fixture{net: net}
	if f.client, err = net.Client(ctx); err != nil {
		t.Fatal(err)
	}
	for _, n := range append([]*node.Node{f.client}, net.Volunteers...) {
		d, err := dashboard.New(n)
		if err != nil {
			t.Fatal(err)
		}
		srv := httptest.NewServer(d)
		t.Cleanup(func() {
			srv.Close()
			if err := d.Close(); err != nil {
				t.Error(err)
			}
		})
		f.dash = append(f.dash, srv)
	}
	m, err := f.client.OpenModel(ctx, net.ModelID, node.DefaultCoverageWait)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	if f.res, err = m.Generate(ctx, pipeline.Request{Prompt: "Once upon a time", MaxTokens: maxTokens}); err != nil {
		t.Fatal(err)
	}
	if len(f.res.Tokens) != maxTokens {
		t.Fatalf("generated %d tokens", len(f.res.Tokens))
	}
	return f
}

func get(t *testing.T, method, url string) (*http.Response, []byte) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, b
}

func status(t *testing.T, srv *httptest.Server) dashboard.Status {
	t.Helper()
	resp, body := get(t, http.MethodGet, srv.URL+"/api/status")
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "application/json" {
		t.Fatalf("GET /api/status: %s %s", resp.Status, resp.Header.Get("Content-Type"))
	}
	var s dashboard.Status
	if err := json.Unmarshal(body, &s); err != nil {
		t.Fatalf("status does not decode: %v\n%s", err, body)
	}
	return s
}

// TestStatus checks GET /api/status of a light client and of each volunteer
// against the network: its peers and their ranges, the coverage, the balance
// in the ledger, the receipts on the chain, the tokens counted.
func TestStatus(t *testing.T) {
	f := start(t)
	// Coverage views start when the page first asks: wait for the first DHT
	// answer, as the page's next poll would.
	var s dashboard.Status
	deadline := time.Now().Add(10 * time.Second)
	for {
		s = status(t, f.dash[0])
		if len(s.Models) == 1 && len(s.Peers) == len(split) || time.Now().After(deadline) {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if s.Node.ID != f.client.ID().String() || s.Node.Serving != nil || len(s.Node.Addrs) == 0 {
		t.Errorf("client: node %+v", s.Node)
	}
	if len(s.Models) != 1 || s.Models[0].Model != f.net.ModelID.String() || s.Models[0].Layers != 5 || !s.Models[0].Covered {
		t.Fatalf("client: models %+v", s.Models)
	}
	if got := fmt.Sprint(s.Models[0].Servers); got != wantCoverage {
		t.Errorf("client: coverage %v, want %s", s.Models[0].Servers, wantCoverage)
	}
	var ids []string
	for i, v := range f.net.Volunteers {
		ids = append(ids, v.ID().String())
		k := slices.IndexFunc(s.Peers, func(p dashboard.Peer) bool { return p.ID == v.ID().String() })
		if k < 0 {
			t.Errorf("client: volunteer %d missing from peers", i)
			continue
		}
		p := s.Peers[k]
		if len(p.Models) != 1 || p.Models[0].First != split[i][0] || p.Models[0].Last != split[i][1] || p.Models[0].Throughput == 0 {
			t.Errorf("client: peer %d serves %+v, want %v", i, p.Models, split[i])
		}
		if p.Reliability != 1 || p.Multiplier != 1 || !p.Connected || p.PGrid <= 0 {
			t.Errorf("client: peer %d: %+v", i, p)
		}
	}
	if len(s.Peers) != len(split) {
		t.Errorf("client: %d peers, want %d", len(s.Peers), len(split))
	}
	if s.ConnectedPeers < len(split) || s.DHTPeers < 1 {
		t.Errorf("client: connected to %d, %d in the routing table", s.ConnectedPeers, s.DHTPeers)
	}
	checkBalance(t, "client", s, f.client)
	if s.Balance.Spent <= 0 {
		t.Errorf("client spent %v", s.Balance.Spent)
	}
	var spent float64
	for _, r := range s.Receipts {
		if r.Kind != "spend" || r.Amount >= 0 || !slices.Contains(ids, r.Counterparty) {
			t.Errorf("client: receipt %+v, want a spend to a volunteer", r)
		}
		spent -= r.Amount
	}
	if len(s.Receipts) < 2 || !near(spent, s.Balance.Spent) {
		t.Errorf("client: %d spends summing to %v, balance says %v spent", len(s.Receipts), spent, s.Balance.Spent)
	}
	if s.Tokens.Client.Total != maxTokens || s.Tokens.Stage.Total != 0 || len(s.Tokens.Client.Series) != 60 {
		t.Errorf("client: tokens %+v", s.Tokens)
	}

	hops := 0
	for i, v := range f.net.Volunteers {
		s := status(t, f.dash[i+1])
		if sv := s.Node.Serving; sv == nil || sv.First != split[i][0] || sv.Last != split[i][1] || sv.Layers != 5 {
			t.Errorf("node%d serving %+v, want %v of 5", i+1, s.Node.Serving, split[i])
		}
		if s.Grid == nil || s.Grid.PGrid <= 0 || s.Grid.PGrid > 1 {
			t.Errorf("node%d grid %+v", i+1, s.Grid)
		}
		checkBalance(t, "volunteer", s, v)
		used := v.StageServer().Served() > 0
		wantTokens := uint64(0)
		if used {
			hops++
			wantTokens = maxTokens
		}
		if s.Tokens.Stage.Total != wantTokens || s.Node.Served != v.StageServer().Served() {
			t.Errorf("node%d: stage tokens %d, sessions served %d; want %d tokens", i+1, s.Tokens.Stage.Total, s.Node.Served, wantTokens)
		}
		earns := 0
		for _, r := range s.Receipts {
			if r.Kind == "earn" {
				earns++
				if r.Counterparty != f.client.ID().String() || r.Amount <= 0 {
					t.Errorf("node%d: earn %+v, want one from the client", i+1, r)
				}
			}
		}
		if used && (earns != 1 || s.Balance.Earned+s.Balance.PendingEarn <= 0) {
			t.Errorf("node%d served, but %d earns, balance %+v", i+1, earns, s.Balance)
		}
	}
	if hops < 2 {
		t.Errorf("%d volunteers served the chain, want at least 2", hops)
	}
}

// TestRoutes: the page, and clear answers to what the dashboard does not serve.
func TestRoutes(t *testing.T) {
	f := start(t)
	srv := f.dash[1]
	resp, body := get(t, http.MethodGet, srv.URL+"/")
	if resp.StatusCode != http.StatusOK || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/html") ||
		!strings.Contains(string(body), "<title>imece node</title>") || !strings.Contains(resp.Header.Get("Content-Security-Policy"), "default-src 'none'") {
		t.Errorf("GET /: %s %v", resp.Status, resp.Header)
	}
	for _, tt := range []struct {
		method, path string
		want         int
	}{
		{http.MethodPost, "/api/status", http.StatusMethodNotAllowed},
		{http.MethodGet, "/nothing", http.StatusNotFound},
		{http.MethodDelete, "/", http.StatusMethodNotAllowed},
	} {
		if resp, _ := get(t, tt.method, srv.URL+tt.path); resp.StatusCode != tt.want {
			t.Errorf("%s %s: %s, want %d", tt.method, tt.path, resp.Status, tt.want)
		}
	}
	if _, err := dashboard.New(nil); err == nil {
		t.Error("New(nil) succeeded")
	}
	if _, err := dashboard.New(f.client, dashboard.WithLogger(nil)); err == nil {
		t.Error("New with a nil logger succeeded")
	}
}

func checkBalance(t *testing.T, who string, s dashboard.Status, n *node.Node) {
	t.Helper()
	b, err := n.Ledger().Store().Balance(n.Ledger().Self())
	if err != nil {
		t.Fatal(err)
	}
	if s.Balance == nil {
		t.Fatalf("%s: no balance; errors %v", who, s.Errors)
	}
	want := dashboard.Balance{
		Available: float64(b.Available()) / 1000, Allowance: float64(b.Allowance) / 1000, Earned: float64(b.Earned) / 1000,
		Spent: float64(b.Spent) / 1000, PendingEarn: float64(b.PendingEarn) / 1000, PendingSpend: float64(b.PendingSpend) / 1000,
	}
	if *s.Balance != want {
		t.Errorf("%s: balance %+v, ledger says %+v", who, *s.Balance, want)
	}
}

func near(a, b float64) bool { return a-b < 1e-9 && b-a < 1e-9 }
