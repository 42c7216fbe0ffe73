package metrics_test

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"go.uber.org/goleak"

	"github.com/imece/imece/node"
	"github.com/imece/imece/node/metrics"
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

// scrape fetches /metrics from h over real HTTP and parses it as Prometheus'
// own parser does, so a malformed exposition fails here.
func scrape(t *testing.T, h http.Handler) map[string]*dto.MetricFamily {
	t.Helper()
	srv := httptest.NewServer(h)
	defer srv.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, srv.URL+"/metrics", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusOK || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/plain") {
		t.Fatalf("GET /metrics: %s, %s", resp.Status, resp.Header.Get("Content-Type"))
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(strings.NewReader(string(body)))
	if err != nil {
		t.Fatalf("exposition does not parse: %v\n%s", err, body)
	}
	for name, f := range fams {
		if !strings.HasPrefix(name, "imece_") || f.GetHelp() == "" {
			t.Errorf("metric %s: want an imece_ name and help text", name)
		}
	}
	return fams
}

// value is the value of the series of family name whose labels include
// labels (name=value pairs); -1 when there is none.
func value(fams map[string]*dto.MetricFamily, name string, labels ...string) float64 {
	f := fams[name]
	if f == nil {
		return -1
	}
next:
	for _, m := range f.Metric {
		for i := 0; i+1 < len(labels); i += 2 {
			found := false
			for _, l := range m.Label {
				if l.GetName() == labels[i] && l.GetValue() == labels[i+1] {
					found = true
				}
			}
			if !found {
				continue next
			}
		}
		switch {
		case m.Counter != nil:
			return m.Counter.GetValue()
		case m.Gauge != nil:
			return m.Gauge.GetValue()
		case m.Histogram != nil:
			return float64(m.Histogram.GetSampleCount())
		}
	}
	return -1
}

// TestMetricsAfterGeneration scrapes a light client and every volunteer of a
// real in-process network after a generation through it, and checks each
// series against what happened: the tokens generated, the positions every
// stage computed, the sessions, the receipts and the balances in the ledgers.
func TestMetricsAfterGeneration(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	net, err := testnet.Start(ctx, testnet.WithNodes(3))
	if err != nil {
		t.Fatal(err)
	}
	defer net.Close()
	client, err := net.Client(ctx)
	if err != nil {
		t.Fatal(err)
	}
	watched := append([]*node.Node{client}, net.Volunteers...)
	ms := make([]*metrics.Metrics, len(watched))
	for i, n := range watched {
		if ms[i], err = metrics.New(n); err != nil {
			t.Fatal(err)
		}
		defer ms[i].Close()
	}
	if _, err := metrics.New(client, metrics.WithRegistry(nil)); err == nil {
		t.Error("New with a nil registry succeeded")
	}
	if _, err := metrics.New(client, metrics.WithRegistry(ms[0].Registry())); err == nil {
		t.Error("a second set of metrics registered on the same registry")
	}
	before := scrape(t, ms[1])
	for _, name := range []string{"imece_stage_tokens_total", "imece_stage_sessions_total", "imece_receipts_total"} {
		if v := value(before, name); v != 0 {
			t.Errorf("%s = %v before any work, want 0", name, v)
		}
	}

	m, err := client.OpenModel(ctx, net.ModelID, node.DefaultCoverageWait)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	const maxTokens = 40
	res, err := m.Generate(ctx, pipeline.Request{Prompt: "Once upon a time", MaxTokens: maxTokens})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Tokens) != maxTokens {
		t.Fatalf("generated %d tokens, want %d", len(res.Tokens), maxTokens)
	}

	c := scrape(t, ms[0])
	tests := []struct {
		name   string
		labels []string
		want   float64
	}{
		{"imece_client_tokens_total", nil, maxTokens},
		{"imece_client_token_seconds", []string{"phase", "prefill"}, 1},
		{"imece_client_token_seconds", []string{"phase", "decode"}, maxTokens - 1},
		{"imece_receipts_total", []string{"role", "client", "state", "settled"}, 3}, // one window, three hops
		{"imece_receipts_total", []string{"role", "client", "state", "refused"}, 0},
		{"imece_stage_tokens_total", nil, 0},
		{"imece_stage_sessions", nil, -1}, // a light client has no stage to read
	}
	for _, tt := range tests {
		if got := value(c, tt.name, tt.labels...); got != tt.want {
			t.Errorf("client: %s%v = %v, want %v", tt.name, tt.labels, got, tt.want)
		}
	}
	checkBalance(t, "client", c, client)
	if v := value(c, "imece_balance_gft", "kind", "spent"); v <= 0 {
		t.Errorf("client spent %v GFT, want > 0", v)
	}
	if v := value(c, "imece_connected_peers"); v < 1 {
		t.Errorf("client connected to %v peers", v)
	}
	if v := value(c, "imece_dht_peers"); v < 1 {
		t.Errorf("client's routing table holds %v peers", v)
	}

	positions := float64(res.PromptTokens + maxTokens - 1) // the last token is sampled, not forwarded
	for i, v := range net.Volunteers {
		s := scrape(t, ms[i+1])
		_, layers, _ := v.Serving()
		tests := []struct {
			name   string
			labels []string
			want   float64
		}{
			{"imece_stage_tokens_total", nil, maxTokens},
			{"imece_stage_positions_total", nil, positions},
			{"imece_stage_forward_seconds", []string{"phase", "prefill"}, 1},
			{"imece_stage_forward_seconds", []string{"phase", "decode"}, maxTokens - 1},
			{"imece_stage_sessions_total", nil, 1},
			{"imece_stage_sessions", nil, 0},
			{"imece_receipts_total", []string{"role", "server", "state", "proposed"}, 1},
			{"imece_receipts_total", []string{"role", "server", "state", "settled"}, 1},
			{"imece_receipts_total", []string{"role", "server", "state", "refused"}, 0},
			{"imece_stage_layers", []string{"first", strconv.Itoa(layers.First), "last", strconv.Itoa(layers.Last)}, float64(layers.Last - layers.First)},
			{"imece_client_tokens_total", nil, 0},
		}
		for _, tt := range tests {
			if got := value(s, tt.name, tt.labels...); got != tt.want {
				t.Errorf("node%d: %s%v = %v, want %v", i+1, tt.name, tt.labels, got, tt.want)
			}
		}
		checkBalance(t, "volunteer", s, v)
		if e := value(s, "imece_balance_gft", "kind", "earned"); e <= 0 {
			t.Errorf("node%d earned %v GFT, want > 0", i+1, e)
		}
	}
}

// checkBalance compares the balance gauges with the node's ledger.
func checkBalance(t *testing.T, who string, fams map[string]*dto.MetricFamily, n *node.Node) {
	t.Helper()
	b, err := n.Ledger().Store().Balance(n.Ledger().Self())
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range []struct {
		kind  string
		milli int64
	}{
		{"available", b.Available()}, {"allowance", int64(b.Allowance)}, {"earned", int64(b.Earned)},
		{"spent", int64(b.Spent)}, {"pending_earn", int64(b.PendingEarn)}, {"pending_spend", int64(b.PendingSpend)},
	} {
		if got, want := value(fams, "imece_balance_gft", "kind", k.kind), float64(k.milli)/1000; got != want {
			t.Errorf("%s: balance %s = %v GFT, ledger says %v", who, k.kind, got, want)
		}
	}
}

// TestNewRefusesNoNode: a nil node is an error, not a panic.
func TestNewRefusesNoNode(t *testing.T) {
	if _, err := metrics.New(nil); err == nil {
		t.Error("New(nil) succeeded")
	}
}
