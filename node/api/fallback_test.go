package api

import (
	"context"

	"net/http"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/imece/imece/pipeline"
)

// TestFallback: what the primary cannot serve goes to the fallback endpoint
// (here a second API server running the model locally), non-streaming and
// streaming, marked as such; what it refuses for the caller's reasons does
// not; upstream errors are 502.
func TestFallback(t *testing.T) {
	var upstreamCalls atomic.Int32
	local, err := New(newLocal(t), WithLogger(quiet), WithKeys("up-key"))
	if err != nil {
		t.Fatal(err)
	}
	up := newServer(t, &countingGen{Generator: local.gen, n: &upstreamCalls}, WithKeys("up-key"))
	fb, err := pipeline.NewFallback(up.URL+"/v1", pipeline.WithFallbackModel("stories260K"), pipeline.WithFallbackKey("up-key"))
	if err != nil {
		t.Fatal(err)
	}
	uncovered := &stubGen{err: &pipeline.UncoveredError{Gaps: []pipeline.LayerRange{{First: 0, Last: 5}}}}
	tests := []struct {
		name    string
		primary Generator
		path    string
		body    string
		status  int
		text    string
		calls   int32
	}{
		{"no chain", uncovered, "/v1/completions", `{"model":"bafkstub","prompt":"Once upon a time","max_tokens":124,"temperature":0}`, 200, reference, 1},
		{"chain failed after text (non-streaming restarts)", &stubGen{text: "partial", err: &pipeline.HopError{Code: pipeline.CodeHopFailed}}, "/v1/chat/completions", `{"messages":[{"role":"user","content":"Once upon a time"}],"max_tokens":124,"temperature":0}`, 200, reference, 1},
		{"stream", uncovered, "/v1/completions", `{"prompt":"Once upon a time","max_tokens":124,"temperature":0,"stream":true}`, 200, reference, 1},
		{"stop sequence upstream", uncovered, "/v1/completions", `{"prompt":"Once upon a time","max_tokens":124,"temperature":0,"stop":"Lily"}`, 200, ", there was a little girl named ", 1},
		{"payment refused stays 402", &stubGen{err: &pipeline.HopError{Code: pipeline.CodePaymentRequired}}, "/v1/completions", `{"prompt":"x"}`, 402, "", 0},
		{"bad request stays 400", &stubGen{err: ErrBadRequest}, "/v1/completions", `{"prompt":"x"}`, 400, "", 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			upstreamCalls.Store(0)
			ts := newServer(t, WithFallback(tt.primary, fb, quiet))
			resp, b := post(t, ts.URL+tt.path, "", tt.body)
			if resp.StatusCode != tt.status {
				t.Fatalf("status %d: %s", resp.StatusCode, b)
			}
			if n := upstreamCalls.Load(); n != tt.calls {
				t.Fatalf("upstream called %d times, want %d", n, tt.calls)
			}
			if tt.status != 200 {
				return
			}
			if resp.Header.Get("X-Imece-Fallback") != "1" {
				t.Errorf("no X-Imece-Fallback header")
			}
			var text string
			if strings.Contains(tt.body, `"stream":true`) {
				var sb strings.Builder
				events := sse(t, strings.NewReader(string(b)))
				marked := false
				for _, e := range events[:len(events)-1] {
					c := decode(t, []byte(e))
					sb.WriteString(c.Choices[0].Text)
					marked = marked || (c.Imece != nil && c.Imece.Fallback)
				}
				if !marked {
					t.Error("stream not marked as fallback")
				}
				text = sb.String()
			} else {
				c := decode(t, b)
				text = c.Choices[0].Text
				if c.Choices[0].Message != nil {
					text = c.Choices[0].Message.Content
				}
				if c.Imece == nil || !c.Imece.Fallback || c.Usage.CompletionTokens == 0 {
					t.Errorf("imece %+v usage %+v", c.Imece, c.Usage)
				}
			}
			if text != tt.text {
				t.Errorf("text %q, want %q", text, tt.text)
			}
		})
	}

	t.Run("upstream error is 502", func(t *testing.T) {
		badFB, _ := pipeline.NewFallback(up.URL+"/v1", pipeline.WithFallbackKey("wrong"))
		ts := newServer(t, WithFallback(uncovered, badFB, quiet))
		resp, b := post(t, ts.URL+"/v1/completions", "", `{"prompt":"x"}`)
		c := decode(t, b)
		if resp.StatusCode != http.StatusBadGateway || c.Error == nil || !strings.Contains(c.Error.Message, "incorrect API key") {
			t.Fatalf("status %d: %s", resp.StatusCode, b)
		}
	})
	t.Run("unreachable upstream is 502", func(t *testing.T) {
		deadFB, _ := pipeline.NewFallback("http://127.0.0.1:1/v1")
		ts := newServer(t, WithFallback(uncovered, deadFB, quiet))
		resp, b := post(t, ts.URL+"/v1/completions", "", `{"prompt":"x"}`)
		if resp.StatusCode != http.StatusBadGateway {
			t.Fatalf("status %d: %s", resp.StatusCode, b)
		}
	})
	if _, err := pipeline.NewFallback("ftp://x"); err == nil {
		t.Error("a non-HTTP fallback URL was accepted")
	}
}

type countingGen struct {
	Generator
	n *atomic.Int32
}

func (g *countingGen) Generate(ctx context.Context, req *Request) (*Result, error) {
	g.n.Add(1)
	return g.Generator.Generate(ctx, req)
}
