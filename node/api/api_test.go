package api

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/imece/imece/assets"
	"github.com/imece/imece/kernels"
	"github.com/imece/imece/pipeline"
	"github.com/imece/imece/pipeline/model"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// reference is stories260K's greedy continuation of "Once upon a time"
// (../shared/models/README.md), 124 tokens.
const reference = `, there was a little girl named Lily. She loved to play outside in the park. One day, she saw a big, red ball. She wanted to play with it, but it was too high.
Lily's mom said, "Lily, let's go to the park." Lily was sad and didn't know what to do. She said, "I want to play with your ball, but I can't find`

var quiet = slog.New(slog.DiscardHandler)

func newLocal(t testing.TB) *Local {
	t.Helper()
	m, err := model.FromGGUF(assets.DefaultModel)
	if err != nil {
		t.Fatal(err)
	}
	be, err := kernels.NewCPU(kernels.WithThreads(1))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { be.Close() })
	l, err := NewLocal(m, be, LocalName("stories260K"), LocalLogger(quiet))
	if err != nil {
		t.Fatal(err)
	}
	return l
}

func newServer(t testing.TB, gen Generator, opts ...Option) *httptest.Server {
	t.Helper()
	s, err := New(gen, append([]Option{WithLogger(quiet)}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(s)
	t.Cleanup(ts.Close)
	return ts
}

func post(t *testing.T, url, key, body string) (*http.Response, []byte) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, url, strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	if key != "" {
		req.Header.Set("Authorization", "Bearer "+key)
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

type completion struct {
	ID      string `json:"id"`
	Object  string `json:"object"`
	Created int64  `json:"created"`
	Model   string `json:"model"`
	Choices []struct {
		Index   int    `json:"index"`
		Text    string `json:"text"`
		Message *struct {
			Role    string `json:"role"`
			Content string `json:"content"`
		} `json:"message"`
		Delta *struct {
			Role    string `json:"role"`
			Content string `json:"content"`
		} `json:"delta"`
		FinishReason *string `json:"finish_reason"`
	} `json:"choices"`
	Usage *struct {
		PromptTokens     int `json:"prompt_tokens"`
		CompletionTokens int `json:"completion_tokens"`
		TotalTokens      int `json:"total_tokens"`
	} `json:"usage"`
	Imece *Extension `json:"imece"`
	Error *struct {
		Message string  `json:"message"`
		Type    string  `json:"type"`
		Param   *string `json:"param"`
		Code    string  `json:"code"`
	} `json:"error"`
}

func decode(t *testing.T, b []byte) completion {
	t.Helper()
	var c completion
	if err := json.Unmarshal(b, &c); err != nil {
		t.Fatalf("%v: %s", err, b)
	}
	return c
}

// TestCompletions: the real model through the handler, greedy, gives the
// reference text with OpenAI's shapes, finish reasons, usage and stop
// sequences that end generation early.
func TestCompletions(t *testing.T) {
	ts := newServer(t, newLocal(t), WithClock(func() time.Time { return time.Unix(1700000000, 0) }))
	tests := []struct {
		name, path, body string
		text, finish     string
		completionTokens int
	}{
		{"completion", "/v1/completions", `{"model":"stories260K","prompt":"Once upon a time","max_tokens":124,"temperature":0}`, reference, "length", 124},
		{"prompt array, by CID", "/v1/completions", `{"model":"%CID%","prompt":["Once upon a time"],"max_tokens":124,"temperature":0}`, reference, "length", 124},
		{"default max_tokens is 16", "/v1/completions", `{"model":"stories260K","prompt":"Once upon a time","temperature":0}`, ", there was a little girl named Lily. She loved to play", "length", 16},
		{"stop sequence", "/v1/completions", `{"model":"stories260K","prompt":"Once upon a time","max_tokens":124,"temperature":0,"stop":["Lily"]}`, ", there was a little girl named ", "stop", 10},
		{"stop sequences, earliest wins", "/v1/completions", `{"prompt":"Once upon a time","max_tokens":124,"temperature":0,"stop":["ball", " park"]}`, ", there was a little girl named Lily. She loved to play outside in the", "stop", 26},
		{"chat with the default template", "/v1/chat/completions", `{"model":"stories260K","messages":[{"role":"user","content":"Once upon a time"}],"max_completion_tokens":124,"temperature":0}`, reference, "length", 124},
		{"chat content parts", "/v1/chat/completions", `{"model":"stories260K","messages":[{"role":"user","content":[{"type":"text","text":"Once upon "},{"type":"text","text":"a time"}]}],"max_tokens":124,"temperature":0}`, reference, "length", 124},
	}
	cid := newLocal(t).m.id
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp, b := post(t, ts.URL+tt.path, "", strings.ReplaceAll(tt.body, "%CID%", cid))
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("status %d: %s", resp.StatusCode, b)
			}
			c := decode(t, b)
			isChat := strings.Contains(tt.path, "chat")
			wantObject, wantPrefix := "text_completion", "cmpl-"
			if isChat {
				wantObject, wantPrefix = "chat.completion", "chatcmpl-"
			}
			if c.Object != wantObject || !strings.HasPrefix(c.ID, wantPrefix) || c.Created != 1700000000 || len(c.Choices) != 1 {
				t.Fatalf("shape: %s", b)
			}
			got := c.Choices[0].Text
			if isChat {
				if c.Choices[0].Message == nil || c.Choices[0].Message.Role != "assistant" {
					t.Fatalf("no assistant message: %s", b)
				}
				got = c.Choices[0].Message.Content
			}
			if got != tt.text {
				t.Errorf("text %q, want %q", got, tt.text)
			}
			if f := c.Choices[0].FinishReason; f == nil || *f != tt.finish {
				t.Errorf("finish_reason %v, want %s", f, tt.finish)
			}
			if u := c.Usage; u == nil || u.PromptTokens != 5 || u.CompletionTokens != tt.completionTokens || u.TotalTokens != 5+tt.completionTokens {
				t.Errorf("usage %+v, want 5 + %d", c.Usage, tt.completionTokens)
			}
			if c.Imece == nil || c.Imece.Fallback || c.Imece.CostGFT != "0.000" {
				t.Errorf("imece %+v", c.Imece)
			}
		})
	}
}

// sse reads a server-sent event stream into its data payloads.
func sse(t *testing.T, r io.Reader) []string {
	t.Helper()
	var out []string
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		line := sc.Text()
		if line == "" {
			continue
		}
		d, ok := strings.CutPrefix(line, "data: ")
		if !ok {
			t.Fatalf("not an SSE data line: %q", line)
		}
		out = append(out, d)
	}
	return out
}

// TestStreaming: text arrives in chunks that add up to the reference, the
// last chunk has the finish reason, the usage chunk comes when asked, and the
// stream ends with [DONE]; a stop sequence split across chunks never leaks.
func TestStreaming(t *testing.T) {
	ts := newServer(t, newLocal(t))
	tests := []struct {
		name, path, body string
		text, finish     string
		usage            bool
	}{
		{"completion", "/v1/completions", `{"prompt":"Once upon a time","max_tokens":124,"temperature":0,"stream":true}`, reference, "length", false},
		{"chat with usage", "/v1/chat/completions", `{"messages":[{"role":"user","content":"Once upon a time"}],"max_tokens":124,"temperature":0,"stream":true,"stream_options":{"include_usage":true}}`, reference, "length", true},
		{"stop across chunks", "/v1/completions", `{"prompt":"Once upon a time","max_tokens":124,"temperature":0,"stream":true,"stop":"red ball"}`, ", there was a little girl named Lily. She loved to play outside in the park. One day, she saw a big, ", "stop", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			req, _ := http.NewRequestWithContext(ctx, http.MethodPost, ts.URL+tt.path, strings.NewReader(tt.body))
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			if ct := resp.Header.Get("Content-Type"); resp.StatusCode != 200 || ct != "text/event-stream" {
				t.Fatalf("status %d, content type %q", resp.StatusCode, ct)
			}
			events := sse(t, resp.Body)
			if len(events) < 3 || events[len(events)-1] != "[DONE]" {
				t.Fatalf("events %q", events)
			}
			var text strings.Builder
			var finish string
			var sawUsage bool
			for _, e := range events[:len(events)-1] {
				c := decode(t, []byte(e))
				if c.Model != "stories260K" {
					t.Fatalf("chunk names model %q, want the default model's name", c.Model)
				}
				if c.Usage != nil {
					sawUsage = true
					if len(c.Choices) != 0 || c.Usage.PromptTokens != 5 || c.Usage.CompletionTokens != 124 {
						t.Errorf("usage chunk %s", e)
					}
					continue
				}
				if len(c.Choices) != 1 {
					t.Fatalf("chunk %s", e)
				}
				ch := c.Choices[0]
				text.WriteString(ch.Text)
				if ch.Delta != nil {
					text.WriteString(ch.Delta.Content)
				}
				if ch.FinishReason != nil {
					finish = *ch.FinishReason
					if c.Imece == nil {
						t.Errorf("last chunk without the imece object: %s", e)
					}
				}
			}
			if text.String() != tt.text || finish != tt.finish || sawUsage != tt.usage {
				t.Errorf("text %q finish %q usage %v; want %q %q %v", text.String(), finish, sawUsage, tt.text, tt.finish, tt.usage)
			}
		})
	}
}

// TestErrors: bad requests get OpenAI's error shape and the right status.
func TestErrors(t *testing.T) {
	ts := newServer(t, newLocal(t), WithMaxBody(1<<10))
	tests := []struct {
		name, method, path, body string
		status                   int
		param, code              string
	}{
		{"n > 1", "POST", "/v1/completions", `{"prompt":"x","n":2}`, 400, "n", "invalid_value"},
		{"temperature", "POST", "/v1/completions", `{"prompt":"x","temperature":3}`, 400, "temperature", "invalid_value"},
		{"top_p", "POST", "/v1/completions", `{"prompt":"x","top_p":0}`, 400, "top_p", "invalid_value"},
		{"max_tokens", "POST", "/v1/completions", `{"prompt":"x","max_tokens":0}`, 400, "max_tokens", "invalid_value"},
		{"no prompt", "POST", "/v1/completions", `{"model":"stories260K"}`, 400, "prompt", "invalid_value"},
		{"two prompts", "POST", "/v1/completions", `{"prompt":["a","b"]}`, 400, "prompt", "invalid_value"},
		{"token prompt", "POST", "/v1/completions", `{"prompt":[[1,2]]}`, 400, "prompt", "invalid_value"},
		{"too many stops", "POST", "/v1/completions", `{"prompt":"x","stop":["a","b","c","d","e"]}`, 400, "stop", "invalid_value"},
		{"logprobs", "POST", "/v1/completions", `{"prompt":"x","logprobs":2}`, 400, "logprobs", "invalid_value"},
		{"no messages", "POST", "/v1/chat/completions", `{"messages":[]}`, 400, "messages", "invalid_value"},
		{"tool role", "POST", "/v1/chat/completions", `{"messages":[{"role":"tool","content":"x"}]}`, 400, "messages[0].role", "invalid_value"},
		{"image part", "POST", "/v1/chat/completions", `{"messages":[{"role":"user","content":[{"type":"image_url","image_url":{"url":"x"}}]}]}`, 400, "messages[0].content[0]", "invalid_value"},
		{"bad JSON", "POST", "/v1/completions", `{"prompt":`, 400, "", "invalid_json"},
		{"too large", "POST", "/v1/completions", `{"prompt":"` + strings.Repeat("x", 2<<10) + `"}`, 413, "", "request_too_large"},
		{"context overflow", "POST", "/v1/completions", `{"prompt":"Once upon a time","max_tokens":100000}`, 400, "", "invalid_value"},
		{"unknown model", "POST", "/v1/completions", `{"model":"gpt-4","prompt":"x"}`, 404, "", "model_not_found"},
		{"unknown path", "GET", "/v1/embeddings", ``, 404, "", "not_found"},
		{"wrong method", "GET", "/v1/completions", ``, 405, "", "method_not_allowed"},
		{"unknown model id", "GET", "/v1/models/nope", ``, 404, "model", "model_not_found"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req, _ := http.NewRequest(tt.method, ts.URL+tt.path, strings.NewReader(tt.body))
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			b, _ := io.ReadAll(resp.Body)
			c := decode(t, b)
			if resp.StatusCode != tt.status || c.Error == nil || c.Error.Code != tt.code || c.Error.Message == "" || c.Error.Type == "" {
				t.Fatalf("status %d body %s; want %d code %s", resp.StatusCode, b, tt.status, tt.code)
			}
			if got := ""; c.Error.Param != nil {
				got = *c.Error.Param
				if got != tt.param {
					t.Errorf("param %q, want %q", got, tt.param)
				}
			} else if tt.param != "" {
				t.Errorf("no param, want %q", tt.param)
			}
		})
	}
}

// stubGen fails as told, to check the mapping of generator errors.
type stubGen struct {
	err  error
	text string
	res  *Result
}

func (g *stubGen) Models(context.Context) []Model { return []Model{{ID: "bafkstub", Name: "stub"}} }
func (g *stubGen) Generate(_ context.Context, req *Request) (*Result, error) {
	if g.text != "" {
		if err := req.OnText(g.text); err != nil {
			return nil, err
		}
	}
	return g.res, g.err
}

func TestErrorStatuses(t *testing.T) {
	tests := []struct {
		err    error
		status int
		typ    string
	}{
		{fmt.Errorf("open: %w", &pipeline.HopError{Code: pipeline.CodePaymentRequired, Message: "insufficient credits: have 0.000 GFT, need 1.000 GFT"}), 402, "insufficient_quota"},
		{&pipeline.UncoveredError{Gaps: []pipeline.LayerRange{{First: 4, Last: 5}}}, 503, "service_unavailable"},
		{&pipeline.FallbackError{Status: 500, Message: "boom"}, 502, "upstream_error"},
		{context.DeadlineExceeded, 504, "timeout"},
		{errors.New("disk on fire"), 500, "server_error"},
	}
	for _, tt := range tests {
		t.Run(tt.typ, func(t *testing.T) {
			ts := newServer(t, &stubGen{err: tt.err})
			resp, b := post(t, ts.URL+"/v1/completions", "", `{"prompt":"x"}`)
			c := decode(t, b)
			if resp.StatusCode != tt.status || c.Error == nil || c.Error.Type != tt.typ || !strings.Contains(c.Error.Message, tt.err.Error()) {
				t.Fatalf("status %d body %s; want %d %s", resp.StatusCode, b, tt.status, tt.typ)
			}
		})
	}
}

// TestKeys: with keys, a missing or wrong key is 401 and a right one passes;
// extra routes are mounted beside the API.
func TestKeys(t *testing.T) {
	dash := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "dashboard") })
	ts := newServer(t, &stubGen{text: "hi", res: &Result{Finish: "stop"}}, WithKeys("k1", "secret-2"), WithRoute("GET /{$}", dash))
	tests := []struct {
		key    string
		status int
	}{{"", 401}, {"wrong", 401}, {"secret-", 401}, {"secret-2", 200}, {"k1", 200}}
	for _, tt := range tests {
		resp, b := post(t, ts.URL+"/v1/completions", tt.key, `{"prompt":"x"}`)
		if resp.StatusCode != tt.status {
			t.Errorf("key %q: status %d %s, want %d", tt.key, resp.StatusCode, b, tt.status)
		}
		if tt.status == 401 && decode(t, b).Error.Code != "invalid_api_key" {
			t.Errorf("key %q: %s", tt.key, b)
		}
	}
	resp, err := http.Get(ts.URL + "/")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if string(b) != "dashboard" {
		t.Fatalf("mounted route answered %q", b)
	}
	if _, err := New(&stubGen{}, WithRoute("/v1/x", dash)); err == nil {
		t.Fatal("a route under /v1/ was accepted")
	}
	// A keyed route answers only key holders; without keys it is open.
	metrics := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "metrics") })
	keyed := newServer(t, &stubGen{}, WithKeys("k1"), WithKeyedRoute("GET /metrics", metrics))
	open := newServer(t, &stubGen{}, WithKeyedRoute("GET /metrics", metrics))
	for _, tc := range []struct {
		url, key string
		status   int
	}{{keyed.URL, "", 401}, {keyed.URL, "nope", 401}, {keyed.URL, "k1", 200}, {open.URL, "", 200}} {
		req, _ := http.NewRequest("GET", tc.url+"/metrics", nil)
		if tc.key != "" {
			req.Header.Set("Authorization", "Bearer "+tc.key)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != tc.status || tc.status == 200 && string(b) != "metrics" {
			t.Errorf("keyed route, key %q: %d %q, want %d", tc.key, resp.StatusCode, b, tc.status)
		}
	}
	if _, err := New(&stubGen{}, WithRoute("GET /", dash), WithRoute("GET /", dash)); err == nil {
		t.Fatal("a conflicting route was accepted")
	}
}

func TestLoadKeysAndExposure(t *testing.T) {
	dir := t.TempDir()
	write := func(name, s string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(s), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	keys, err := LoadKeys(write("ok", "# team keys\n\n  alpha  \nbeta\n# old: gamma\n"))
	if err != nil || strings.Join(keys, ",") != "alpha,beta" {
		t.Fatalf("keys %q, %v", keys, err)
	}
	for name, content := range map[string]string{"empty": "# nothing\n\n", "spaces": "two words\n"} {
		if _, err := LoadKeys(write(name, content)); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	if _, err := LoadKeys(filepath.Join(dir, "missing")); err == nil {
		t.Error("missing file accepted")
	}
	tests := []struct {
		addr string
		keys bool
		ok   bool
	}{
		{"127.0.0.1:8080", false, true}, {"[::1]:8080", false, true}, {"localhost:8080", false, true},
		{"0.0.0.0:8080", false, false}, {":8080", false, false}, {"10.1.2.3:8080", false, false},
		{"0.0.0.0:8080", true, true}, {"nonsense", true, false},
	}
	for _, tt := range tests {
		err := CheckExposure(tt.addr, tt.keys)
		if (err == nil) != tt.ok {
			t.Errorf("CheckExposure(%q, %v) = %v", tt.addr, tt.keys, err)
		}
		if !tt.ok && tt.addr != "nonsense" && !errors.Is(err, ErrExposed) {
			t.Errorf("%q: %v is not ErrExposed", tt.addr, err)
		}
	}
}

func TestStopFilter(t *testing.T) {
	tests := []struct {
		name   string
		stops  []string
		pieces []string
		want   string
		stop   bool
	}{
		{"none", nil, []string{"ab", "cd"}, "abcd", false},
		{"in one piece", []string{"c"}, []string{"ab", "cd"}, "ab", true},
		{"split over pieces", []string{"bc"}, []string{"ab", "cd"}, "a", true},
		{"false start released", []string{"abx"}, []string{"a", "b", "c"}, "abc", false},
		{"earliest of several", []string{"d", "b"}, []string{"abcd"}, "a", true},
		{"unicode", []string{"é!"}, []string{"caf", "é", "!"}, "caf", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var out strings.Builder
			f := &stopFilter{stops: tt.stops, out: func(s string) error { out.WriteString(s); return nil }}
			stopped := false
			for _, p := range tt.pieces {
				if err := f.write(p); errors.Is(err, errStop) {
					stopped = true
					break
				}
			}
			if !stopped {
				f.flush()
			}
			if out.String() != tt.want || stopped != tt.stop {
				t.Fatalf("got %q stop %v, want %q %v", out.String(), stopped, tt.want, tt.stop)
			}
		})
	}
}

// TestModelsAndConcurrency: /v1/models lists the model under name and CID;
// concurrent requests all get the reference.
func TestModelsAndConcurrency(t *testing.T) {
	l := newLocal(t)
	ts := newServer(t, l)
	resp, err := http.Get(ts.URL + "/v1/models")
	if err != nil {
		t.Fatal(err)
	}
	var list struct {
		Object string        `json:"object"`
		Data   []modelObject `json:"data"`
	}
	json.NewDecoder(resp.Body).Decode(&list)
	resp.Body.Close()
	if list.Object != "list" || len(list.Data) != 2 || list.Data[0].ID != "stories260K" || list.Data[1].ID != l.m.id || list.Data[0].Object != "model" || list.Data[1].Imece.CID != l.m.id {
		t.Fatalf("models %+v", list)
	}
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			resp, b := post(t, ts.URL+"/v1/completions", "", `{"prompt":"Once upon a time","max_tokens":124,"temperature":0}`)
			if resp.StatusCode != 200 || decode(t, b).Choices[0].Text != reference {
				t.Errorf("concurrent request: %d %s", resp.StatusCode, b)
			}
		})
	}
	wg.Wait()
}

// TestDisconnectCancels: a client that leaves mid-stream cancels the
// generation (the generator sees its context end).
func TestDisconnectCancels(t *testing.T) {
	gen := &blockingGen{started: make(chan struct{}), done: make(chan error, 1)}
	ts := newServer(t, gen)
	ctx, cancel := context.WithCancel(context.Background())
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, ts.URL+"/v1/completions", strings.NewReader(`{"prompt":"x","stream":true}`))
	go func() {
		<-gen.started
		cancel()
	}()
	if resp, err := http.DefaultClient.Do(req); err == nil {
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}
	select {
	case err := <-gen.done:
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("generator ended with %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("generation not cancelled")
	}
}

type blockingGen struct {
	started chan struct{}
	done    chan error
}

func (g *blockingGen) Models(context.Context) []Model { return nil }
func (g *blockingGen) Generate(ctx context.Context, req *Request) (*Result, error) {
	req.OnText("x")
	close(g.started)
	<-ctx.Done()
	g.done <- ctx.Err()
	return nil, ctx.Err()
}
