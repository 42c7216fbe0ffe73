package testnet

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/imece/imece/ledger"
	"github.com/imece/imece/node/api"
	"github.com/imece/imece/pipeline"
)

type apiAnswer struct {
	Choices []struct {
		Text         string `json:"text"`
		FinishReason string `json:"finish_reason"`
	} `json:"choices"`
	Usage struct {
		PromptTokens     int `json:"prompt_tokens"`
		CompletionTokens int `json:"completion_tokens"`
	} `json:"usage"`
	Imece *api.Extension `json:"imece"`
	Error *struct {
		Message string `json:"message"`
		Code    string `json:"code"`
	} `json:"error"`
}

func apiPost(t *testing.T, url, body string) (int, http.Header, apiAnswer) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, url, strings.NewReader(body))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var a apiAnswer
	if err := json.Unmarshal(b, &a); err != nil {
		t.Fatalf("%v: %s", err, b)
	}
	return resp.StatusCode, resp.Header, a
}

// TestAPIThroughTheMesh: a node of a real in-process cooperative serves the
// API; a request by name gets the reference text through a chain of three
// volunteers, and the node's ledger pays for it.
func TestAPIThroughTheMesh(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	n, err := Start(ctx, WithNodes(3))
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	c, err := n.Client(ctx)
	if err != nil {
		t.Fatal(err)
	}
	mesh := api.NewMesh(c, api.MeshName(n.ModelID, "stories260K"), api.MeshWait(20*time.Second))
	defer mesh.Close()
	srv, err := api.New(mesh)
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(srv)
	defer ts.Close()
	balance := func() ledger.Balance {
		b, err := c.Ledger().Store().Balance(c.Ledger().Self())
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	before := balance()
	status, _, a := apiPost(t, ts.URL+"/v1/completions", `{"model":"stories260K","prompt":"Once upon a time","max_tokens":124,"temperature":0}`)
	if status != 200 || len(a.Choices) != 1 || a.Choices[0].Text != reference {
		t.Fatalf("status %d answer %+v", status, a)
	}
	if a.Usage.PromptTokens != 5 || a.Usage.CompletionTokens != 124 {
		t.Errorf("usage %+v", a.Usage)
	}
	x := a.Imece
	if x == nil || x.Fallback || x.CostMilliGFT <= 0 || x.CostGFT == "0.000" || len(x.Route) != 3 || x.Route[0].Layers != "[0, 1)" {
		t.Fatalf("imece %+v", x)
	}
	after := balance()
	if spent := after.Spent - before.Spent; int64(spent) != x.CostMilliGFT {
		t.Errorf("the response says %d milli-GFT, the ledger spent %d", x.CostMilliGFT, spent)
	}
	t.Logf("cost %s GFT over %v", x.CostGFT, x.Route)
}

// TestAPIInsufficientCredits: a client with no allowance is refused by the
// volunteers; the API answers 402 with the ledger's reason.
func TestAPIInsufficientCredits(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	g := ledger.DefaultGenesis()
	g.StarterAllowance = 0
	n, err := Start(ctx, WithNodes(1), WithGenesis(g))
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	c, err := n.Client(ctx)
	if err != nil {
		t.Fatal(err)
	}
	mesh := api.NewMesh(c, api.MeshWait(20*time.Second))
	defer mesh.Close()
	srv, _ := api.New(mesh)
	ts := httptest.NewServer(srv)
	defer ts.Close()
	status, _, a := apiPost(t, ts.URL+"/v1/completions", `{"model":"`+n.ModelID.String()+`","prompt":"Once upon a time","max_tokens":8}`)
	if status != http.StatusPaymentRequired || a.Error == nil || !strings.Contains(a.Error.Message, "insufficient credits") {
		t.Fatalf("status %d answer %+v", status, a.Error)
	}
}

// TestAPIFallbackToServe: a node whose network does not cover the model
// sends the request to a separate `imece serve` process, which answers with
// the reference text; the response says it came from the fallback.
func TestAPIFallbackToServe(t *testing.T) {
	up := start(t, "serve", "serve", "--api", "127.0.0.1:0", "--threads", "1")
	base := up.line(t, 30*time.Second)
	if !strings.HasPrefix(base, "http://127.0.0.1:") {
		t.Fatalf("imece serve printed %q", base)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	n, err := Start(ctx, WithSplit([2]int{0, 2})) // layers [2, 5) served by nobody
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	c, err := n.Client(ctx)
	if err != nil {
		t.Fatal(err)
	}
	mesh := api.NewMesh(c, api.MeshWait(time.Second))
	defer mesh.Close()
	fb, err := pipeline.NewFallback(base, pipeline.WithFallbackModel("stories260K"))
	if err != nil {
		t.Fatal(err)
	}
	srv, _ := api.New(api.WithFallback(mesh, fb, nil))
	ts := httptest.NewServer(srv)
	defer ts.Close()
	for _, stream := range []bool{false, true} {
		body := `{"model":"` + n.ModelID.String() + `","prompt":"Once upon a time","max_tokens":124,"temperature":0}`
		if !stream {
			status, h, a := apiPost(t, ts.URL+"/v1/completions", body)
			if status != 200 || a.Choices[0].Text != reference || a.Imece == nil || !a.Imece.Fallback || h.Get("X-Imece-Fallback") != "1" {
				t.Fatalf("status %d fallback header %q answer %+v", status, h.Get("X-Imece-Fallback"), a)
			}
			continue
		}
		out, err := exec.Command("curl", "-sSN", ts.URL+"/v1/completions", "-d", strings.Replace(body, "{", `{"stream":true,`, 1)).Output()
		if err != nil {
			t.Skipf("curl: %v", err)
		}
		var text strings.Builder
		marked := false
		for _, line := range strings.Split(string(out), "\n") {
			d, ok := strings.CutPrefix(line, "data: ")
			if !ok || d == "[DONE]" {
				continue
			}
			var a apiAnswer
			if err := json.Unmarshal([]byte(d), &a); err != nil {
				t.Fatal(err)
			}
			text.WriteString(a.Choices[0].Text)
			marked = marked || (a.Imece != nil && a.Imece.Fallback)
		}
		if text.String() != reference || !marked {
			t.Fatalf("streamed %q, marked %v", text.String(), marked)
		}
	}
}

// TestNodeAPIExposure: `imece node --api` beyond loopback without keys is
// refused before the node starts; with a keys file a wrong key gets 401.
func TestNodeAPIExposure(t *testing.T) {
	bin := imeceBinary(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, bin, "node", "--data", filepath.Join(t.TempDir(), "n"), "--api", "0.0.0.0:0", "--mdns=false", "--nat=false").CombinedOutput()
	if err == nil || !strings.Contains(string(out), "beyond loopback without API keys") {
		t.Fatalf("err %v, output %s", err, out)
	}
	keys := filepath.Join(t.TempDir(), "keys")
	if err := writeFile(keys, "# keys\nsk-one\n"); err != nil {
		t.Fatal(err)
	}
	p, _ := startNode(t, "boot", "--api", "127.0.0.1:0", "--api-keys", keys)
	m := p.waitStderr(t, regexpAPI, 30*time.Second)
	for _, tt := range []struct {
		key    string
		status int
	}{{"sk-wrong", 401}, {"sk-one", 200}} {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, m[1]+"/models", nil)
		req.Header.Set("Authorization", "Bearer "+tt.key)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != tt.status {
			t.Errorf("key %s: status %d, want %d", tt.key, resp.StatusCode, tt.status)
		}
	}
}

// TestNodeAPIProcess: a volunteer process with --api answers through the
// mesh (the chain goes through the other volunteer: a node never routes
// through itself), and serves its dashboard, status and metrics on the same
// listener, the last two behind the API's keys.
func TestNodeAPIProcess(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	keys := filepath.Join(t.TempDir(), "keys")
	if err := writeFile(keys, "sk-one\n"); err != nil {
		t.Fatal(err)
	}
	_, addr := startNode(t, "boot")
	path := modelPath(t)
	startNode(t, "whole", "--bootstrap", addr, "--model", path, "--layers", "0:5", "--bench=false")
	p, _ := startNode(t, "api", "--bootstrap", addr, "--model", path, "--layers", "0:2", "--bench=false",
		"--api", "127.0.0.1:0", "--api-keys", keys)
	base := strings.TrimSuffix(p.waitStderr(t, regexpAPI, 30*time.Second)[1], "/v1")
	get := func(path, key string) (int, string) {
		t.Helper()
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, base+path, nil)
		if key != "" {
			req.Header.Set("Authorization", "Bearer "+key)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if code, body := get("/", ""); code != 200 || !strings.Contains(body, "<html") {
		t.Errorf("GET /: %d %.80q", code, body)
	}
	for _, path := range []string{"/api/status", "/metrics"} {
		if code, _ := get(path, ""); code != 401 {
			t.Errorf("GET %s without a key: %d, want 401", path, code)
		}
	}
	if code, body := get("/api/status", "sk-one"); code != 200 || !strings.Contains(body, `"serving"`) {
		t.Errorf("GET /api/status: %d %.80q", code, body)
	}
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, base+"/v1/completions", strings.NewReader(
		`{"model":"stories260K","prompt":"Once upon a time","max_tokens":124,"temperature":0}`))
	req.Header.Set("Authorization", "Bearer sk-one")
	req.Header.Set("Content-Type", "application/json")
	var resp *http.Response
	var body []byte
	for {
		var err error
		if resp, err = http.DefaultClient.Do(req.Clone(ctx)); err != nil {
			t.Fatal(err)
		}
		body, _ = io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusServiceUnavailable || ctx.Err() != nil {
			break // 503 until the other volunteer's record arrives
		}
		req.Body = io.NopCloser(strings.NewReader(`{"model":"stories260K","prompt":"Once upon a time","max_tokens":124,"temperature":0}`))
		time.Sleep(200 * time.Millisecond)
	}
	var got struct {
		Choices []struct{ Text string }
		Imece   struct {
			Route []struct{ Peer string }
		}
	}
	if err := json.Unmarshal(body, &got); err != nil || resp.StatusCode != 200 || len(got.Choices) != 1 {
		t.Fatalf("completion: %d %s (%v)", resp.StatusCode, body, err)
	}
	if got.Choices[0].Text != reference {
		t.Errorf("text through the mesh:\n%q\nwant\n%q", got.Choices[0].Text, reference)
	}
	if len(got.Imece.Route) != 1 {
		t.Errorf("route %+v: want the other volunteer alone", got.Imece.Route)
	}
	code, metrics := get("/metrics", "sk-one")
	if code != 200 || !strings.Contains(metrics, "imece_client_tokens_total 124") {
		t.Errorf("GET /metrics: %d, no imece_client_tokens_total 124 in\n%.400s", code, metrics)
	}
}

var regexpAPI = regexp.MustCompile(`imece: API listening on (http://\S+)`)

func writeFile(path, s string) error { return os.WriteFile(path, []byte(s), 0o600) }
