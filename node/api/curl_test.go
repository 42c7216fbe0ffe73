package api

import (
	"context"
	"encoding/json"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// TestCurl: the README's curl commands, run with the real curl, non-streaming
// and with -N streaming.
func TestCurl(t *testing.T) {
	curl, err := exec.LookPath("curl")
	if err != nil {
		t.Skip("curl not installed; the API is tested with net/http and the OpenAI client instead")
	}
	ts := newServer(t, newLocal(t), WithKeys("sk-curl"))
	run := func(args ...string) string {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		out, err := exec.CommandContext(ctx, curl, append([]string{"-sS", "--fail-with-body"}, args...)...).Output()
		if err != nil {
			t.Fatalf("curl %v: %v\n%s", args, err, out)
		}
		return string(out)
	}
	body := `{"model": "stories260K", "messages": [{"role": "user", "content": "Once upon a time"}], "max_tokens": 124, "temperature": 0}`
	out := run(ts.URL+"/v1/chat/completions", "-H", "Authorization: Bearer sk-curl", "-H", "Content-Type: application/json", "-d", body)
	c := decode(t, []byte(out))
	if len(c.Choices) != 1 || c.Choices[0].Message == nil || c.Choices[0].Message.Content != reference || c.Usage.CompletionTokens != 124 {
		t.Fatalf("curl got %s", out)
	}

	out = run("-N", ts.URL+"/v1/completions", "-H", "Authorization: Bearer sk-curl", "-H", "Content-Type: application/json",
		"-d", `{"model": "stories260K", "prompt": "Once upon a time", "max_tokens": 124, "temperature": 0, "stream": true}`)
	events := sse(t, strings.NewReader(out))
	if len(events) < 3 || events[len(events)-1] != "[DONE]" {
		t.Fatalf("stream %q", out)
	}
	var text strings.Builder
	for _, e := range events[:len(events)-1] {
		var chunk completion
		if err := json.Unmarshal([]byte(e), &chunk); err != nil {
			t.Fatal(err)
		}
		text.WriteString(chunk.Choices[0].Text)
	}
	if text.String() != reference {
		t.Fatalf("streamed %q", text.String())
	}

	out = run(ts.URL+"/v1/models", "-H", "Authorization: Bearer sk-curl")
	if !strings.Contains(out, `"id":"stories260K"`) {
		t.Fatalf("models %s", out)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	code, _ := exec.CommandContext(ctx, curl, "-s", "-o", "/dev/null", "-w", "%{http_code}", ts.URL+"/v1/models", "-H", "Authorization: Bearer nope").Output()
	if string(code) != "401" {
		t.Fatalf("wrong key: HTTP %s", code)
	}
}
