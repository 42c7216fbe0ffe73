package pipeline

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

// TestFallbackClient: the client relays streams and whole answers, forwards
// the parameters and key, and turns every kind of upstream failure into an
// ErrFallback.
func TestFallbackClient(t *testing.T) {
	tests := []struct {
		name    string
		status  int
		ctype   string
		body    string
		text    string
		finish  Finish
		tokens  int
		wantErr string
	}{
		{"stream", 200, "text/event-stream", "data: {\"model\":\"m\",\"choices\":[{\"text\":\"a\"}]}\n\n: comment\n\ndata: {\"choices\":[{\"text\":\"b\",\"finish_reason\":\"length\"}]}\n\ndata: {\"choices\":[],\"usage\":{\"prompt_tokens\":3,\"completion_tokens\":7}}\n\ndata: [DONE]\n\n", "ab", FinishLength, 7, ""},
		{"chat stream without usage", 200, "text/event-stream", "data: {\"choices\":[{\"delta\":{\"role\":\"assistant\",\"content\":\"\"}}]}\n\ndata: {\"choices\":[{\"delta\":{\"content\":\"hi\"},\"finish_reason\":\"stop\"}]}\n\ndata: [DONE]\n\n", "hi", FinishEOS, 1, ""},
		{"whole answer", 200, "application/json", `{"choices":[{"message":{"content":"whole"},"finish_reason":"stop"}],"usage":{"prompt_tokens":1,"completion_tokens":2}}`, "whole", FinishEOS, 2, ""},
		{"error status", 429, "application/json", `{"error":{"message":"slow down","type":"rate_limit"}}`, "", "", 0, "HTTP 429: slow down"},
		{"error in stream", 200, "text/event-stream", "data: {\"choices\":[{\"text\":\"a\"}]}\n\ndata: {\"error\":{\"message\":\"model crashed\"}}\n\n", "a", "", 0, "model crashed"},
		{"stream cut short", 200, "text/event-stream", "data: {\"choices\":[{\"text\":\"a\"}]}\n\n", "a", "", 0, "without [DONE]"},
		{"malformed chunk", 200, "text/event-stream", "data: {nope\n\n", "", "", 0, "malformed"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got string
			ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				b, _ := io.ReadAll(r.Body)
				got = r.URL.Path + " " + r.Header.Get("Authorization") + " " + string(b)
				w.Header().Set("Content-Type", tt.ctype)
				w.WriteHeader(tt.status)
				io.WriteString(w, tt.body)
			}))
			defer ts.Close()
			f, err := NewFallback(ts.URL+"/v1/", WithFallbackModel("up"), WithFallbackKey("k"))
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			seed := int64(7)
			var text strings.Builder
			res, err := f.Generate(ctx, FallbackRequest{Model: "mine", Prompt: "p", MaxTokens: 5, Seed: &seed, Stop: []string{"x"},
				OnText: func(s string) error { text.WriteString(s); return nil }})
			for _, want := range []string{"/v1/completions Bearer k ", `"model":"up"`, `"max_tokens":5`, `"seed":7`, `"stop":["x"]`, `"stream":true`} {
				if !strings.Contains(got, want) {
					t.Errorf("upstream got %s, missing %s", got, want)
				}
			}
			if text.String() != tt.text {
				t.Errorf("text %q, want %q", text.String(), tt.text)
			}
			if tt.wantErr != "" {
				if !errors.Is(err, ErrFallback) || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err %v, want ErrFallback with %q", err, tt.wantErr)
				}
				return
			}
			if err != nil || res.Finish != tt.finish || res.CompletionTokens != tt.tokens {
				t.Fatalf("res %+v err %v", res, err)
			}
		})
	}
}
