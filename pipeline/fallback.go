package pipeline

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// Fallback is an OpenAI-compatible endpoint (llama.cpp's server, vLLM, a
// hosted API, or another imece serving the whole model) that takes requests
// the mesh cannot serve: no chain covers the model, or the chain failed beyond
// its retries (DESIGN.md §4). It is a hand-written net/http client rather than
// an SDK because it must relay a stream piece by piece as it arrives, speak
// to any server that follows the wire format, and keep the dependency graph of
// pipeline small; it always asks the upstream to stream, so the caller's
// OnText sees text as the upstream produces it.
type Fallback struct {
	base  *url.URL
	cfg   fallbackConfig
	httpc *http.Client
}

type fallbackConfig struct {
	model   string
	key     string
	headers time.Duration
	client  *http.Client
}

// FallbackOption configures NewFallback.
type FallbackOption func(*fallbackConfig) error

// WithFallbackModel is the model name sent upstream; without it the request's
// own model name is sent.
func WithFallbackModel(name string) FallbackOption {
	return func(c *fallbackConfig) error { c.model = name; return nil }
}

// WithFallbackKey is the upstream's API key, sent as a bearer token.
func WithFallbackKey(key string) FallbackOption {
	return func(c *fallbackConfig) error { c.key = key; return nil }
}

// WithFallbackHeaderTimeout bounds the wait for the upstream's response
// headers (default 60 s); the body, a stream, is bounded by the request's
// context.
func WithFallbackHeaderTimeout(d time.Duration) FallbackOption {
	return func(c *fallbackConfig) error {
		if d <= 0 {
			return fmt.Errorf("fallback header timeout %v must be positive", d)
		}
		c.headers = d
		return nil
	}
}

// WithFallbackHTTPClient replaces the HTTP client (tests, proxies).
func WithFallbackHTTPClient(c *http.Client) FallbackOption {
	return func(cfg *fallbackConfig) error { cfg.client = c; return nil }
}

// NewFallback prepares a client of the endpoint at baseURL, the API's base
// such as http://127.0.0.1:8081/v1 (requests go to baseURL/completions and
// baseURL/chat/completions).
func NewFallback(baseURL string, opts ...FallbackOption) (*Fallback, error) {
	u, err := url.Parse(baseURL)
	if err != nil {
		return nil, fmt.Errorf("fallback URL: %w", err)
	}
	if (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("fallback URL %q: want http(s)://host[:port]/v1", baseURL)
	}
	cfg := fallbackConfig{headers: 60 * time.Second}
	for _, o := range opts {
		if err := o(&cfg); err != nil {
			return nil, err
		}
	}
	c := cfg.client
	if c == nil {
		c = &http.Client{Transport: &http.Transport{
			Proxy:                 http.ProxyFromEnvironment,
			DialContext:           (&net.Dialer{Timeout: 10 * time.Second}).DialContext,
			TLSHandshakeTimeout:   10 * time.Second,
			ResponseHeaderTimeout: cfg.headers,
			MaxIdleConnsPerHost:   8,
			IdleConnTimeout:       90 * time.Second,
		}}
	}
	u.Path = strings.TrimSuffix(u.Path, "/")
	return &Fallback{base: u, cfg: cfg, httpc: c}, nil
}

// URL is the endpoint's base URL, for logs.
func (f *Fallback) URL() string { return f.base.String() }

// Model is the model name sent upstream, "" when requests keep their own.
func (f *Fallback) Model() string { return f.cfg.model }

// FallbackMessage is a chat message sent upstream.
type FallbackMessage struct {
	Role    string `json:"role"`
	Content string `json:"content"`
}

// FallbackRequest is one generation for the upstream: a prompt for
// /completions, or messages for /chat/completions.
type FallbackRequest struct {
	Model    string // used when the Fallback has no model of its own
	Prompt   string
	Messages []FallbackMessage
	// MaxTokens 0 leaves the length to the upstream.
	MaxTokens   int
	Temperature *float64
	TopP        *float64
	Seed        *int64
	Stop        []string
	User        string
	// OnText receives the text as it arrives; an error from it ends the
	// request.
	OnText func(string) error
}

// FallbackResult is what the upstream reported.
type FallbackResult struct {
	Model                          string
	PromptTokens, CompletionTokens int
	Finish                         Finish
}

// ErrFallback marks a failure of the fallback endpoint (unreachable, an
// error status, a malformed stream): the API reports it as a bad gateway.
var ErrFallback = errors.New("fallback endpoint failed")

// FallbackError is an error answer of the upstream.
type FallbackError struct {
	Status  int // HTTP status; 0 for an error inside a stream
	Message string
}

func (e *FallbackError) Error() string {
	if e.Status == 0 {
		return fmt.Sprintf("%v: %s", ErrFallback, e.Message)
	}
	return fmt.Sprintf("%v: HTTP %d: %s", ErrFallback, e.Status, e.Message)
}

// Unwrap makes errors.Is(err, ErrFallback) hold.
func (e *FallbackError) Unwrap() error { return ErrFallback }

// Bounds on what the upstream sends back.
const (
	maxFallbackLine  = 1 << 20
	maxFallbackError = 64 << 10
)

// Generate sends req upstream and relays the text to req.OnText.
func (f *Fallback) Generate(ctx context.Context, req FallbackRequest) (FallbackResult, error) {
	body := map[string]any{
		"stream":         true,
		"stream_options": map[string]any{"include_usage": true},
	}
	body["model"] = req.Model
	if f.cfg.model != "" {
		body["model"] = f.cfg.model
	}
	path := "/completions"
	if req.Messages != nil {
		path = "/chat/completions"
		body["messages"] = req.Messages
	} else {
		body["prompt"] = req.Prompt
	}
	if req.MaxTokens > 0 {
		body["max_tokens"] = req.MaxTokens
	}
	if req.Temperature != nil {
		body["temperature"] = *req.Temperature
	}
	if req.TopP != nil {
		body["top_p"] = *req.TopP
	}
	if req.Seed != nil {
		body["seed"] = *req.Seed
	}
	if len(req.Stop) > 0 {
		body["stop"] = req.Stop
	}
	if req.User != "" {
		body["user"] = req.User
	}
	b, err := json.Marshal(body)
	if err != nil {
		return FallbackResult{}, err
	}
	u := *f.base
	u.Path += path
	hr, err := http.NewRequestWithContext(ctx, http.MethodPost, u.String(), bytes.NewReader(b))
	if err != nil {
		return FallbackResult{}, err
	}
	hr.Header.Set("Content-Type", "application/json")
	hr.Header.Set("Accept", "text/event-stream")
	if f.cfg.key != "" {
		hr.Header.Set("Authorization", "Bearer "+f.cfg.key)
	}
	resp, err := f.httpc.Do(hr)
	if err != nil {
		if ctx.Err() != nil {
			return FallbackResult{}, ctx.Err()
		}
		return FallbackResult{}, fmt.Errorf("%w: %v", ErrFallback, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		raw, _ := io.ReadAll(io.LimitReader(resp.Body, maxFallbackError))
		return FallbackResult{}, &FallbackError{Status: resp.StatusCode, Message: upstreamMessage(raw)}
	}
	emit := func(s string) error {
		if s == "" || req.OnText == nil {
			return nil
		}
		return req.OnText(s)
	}
	if !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/event-stream") {
		// A server that ignored "stream": one JSON answer.
		raw, err := io.ReadAll(io.LimitReader(resp.Body, maxFallbackLine))
		if err != nil {
			return FallbackResult{}, fmt.Errorf("%w: %v", ErrFallback, err)
		}
		var c fallbackChunk
		if err := json.Unmarshal(raw, &c); err != nil {
			return FallbackResult{}, &FallbackError{Message: fmt.Sprintf("malformed answer: %v", err)}
		}
		res, text, err := c.apply(FallbackResult{})
		if err != nil {
			return res, err
		}
		return res, emit(text)
	}
	return readFallbackStream(ctx, resp.Body, emit)
}

func readFallbackStream(ctx context.Context, body io.Reader, emit func(string) error) (FallbackResult, error) {
	var res FallbackResult
	r := bufio.NewReaderSize(body, 64<<10)
	for {
		line, err := readLine(r)
		if err != nil {
			if ctx.Err() != nil {
				return res, ctx.Err()
			}
			return res, &FallbackError{Message: fmt.Sprintf("stream ended without [DONE]: %v", err)}
		}
		data, ok := strings.CutPrefix(line, "data:")
		if !ok {
			continue // comments, event names, blank separators
		}
		data = strings.TrimSpace(data)
		if data == "[DONE]" {
			if res.Finish == "" {
				res.Finish = FinishEOS
			}
			return res, nil
		}
		var c fallbackChunk
		if err := json.Unmarshal([]byte(data), &c); err != nil {
			return res, &FallbackError{Message: fmt.Sprintf("malformed stream chunk: %v", err)}
		}
		var text string
		if res, text, err = c.apply(res); err != nil {
			return res, err
		}
		if text != "" {
			if c.Usage == nil {
				res.CompletionTokens++ // a guess, replaced by the usage chunk when one comes
			}
			if err := emit(text); err != nil {
				return res, err
			}
		}
	}
}

// readLine reads one line of at most maxFallbackLine bytes, without its end.
func readLine(r *bufio.Reader) (string, error) {
	var b []byte
	for {
		part, isPrefix, err := r.ReadLine()
		if err != nil {
			return "", err
		}
		b = append(b, part...)
		if len(b) > maxFallbackLine {
			return "", fmt.Errorf("line longer than %d bytes", maxFallbackLine)
		}
		if !isPrefix {
			return string(b), nil
		}
	}
}

// fallbackChunk is a completion, chat completion, or one of their stream
// chunks, or an error.
type fallbackChunk struct {
	Model   string `json:"model"`
	Choices []struct {
		Text  string `json:"text"`
		Delta *struct {
			Content string `json:"content"`
		} `json:"delta"`
		Message *struct {
			Content string `json:"content"`
		} `json:"message"`
		FinishReason *string `json:"finish_reason"`
	} `json:"choices"`
	Usage *struct {
		PromptTokens     int `json:"prompt_tokens"`
		CompletionTokens int `json:"completion_tokens"`
	} `json:"usage"`
	Error json.RawMessage `json:"error"`
}

// apply folds a chunk into res and returns its text.
func (c *fallbackChunk) apply(res FallbackResult) (FallbackResult, string, error) {
	if len(c.Error) > 0 && string(c.Error) != "null" {
		return res, "", &FallbackError{Message: upstreamMessage([]byte(`{"error":` + string(c.Error) + `}`))}
	}
	if c.Model != "" {
		res.Model = c.Model
	}
	var text strings.Builder
	for _, ch := range c.Choices {
		text.WriteString(ch.Text)
		if ch.Delta != nil {
			text.WriteString(ch.Delta.Content)
		}
		if ch.Message != nil {
			text.WriteString(ch.Message.Content)
		}
		if ch.FinishReason != nil && *ch.FinishReason != "" {
			res.Finish = Finish(*ch.FinishReason)
		}
	}
	if c.Usage != nil {
		res.PromptTokens, res.CompletionTokens = c.Usage.PromptTokens, c.Usage.CompletionTokens
	}
	return res, text.String(), nil
}

// upstreamMessage extracts the message of an OpenAI-shaped error body, or
// quotes the start of anything else.
func upstreamMessage(raw []byte) string {
	var e struct {
		Error json.RawMessage `json:"error"`
	}
	if json.Unmarshal(raw, &e) == nil && len(e.Error) > 0 {
		var obj struct {
			Message string `json:"message"`
		}
		if json.Unmarshal(e.Error, &obj) == nil && obj.Message != "" {
			return obj.Message
		}
		var s string
		if json.Unmarshal(e.Error, &s) == nil && s != "" {
			return s
		}
	}
	s := strings.TrimSpace(string(raw))
	if len(s) > 200 {
		s = s[:200] + "…"
	}
	if s == "" {
		return "empty answer"
	}
	return s
}
