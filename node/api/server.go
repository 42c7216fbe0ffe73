package api

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/imece/imece/ledger"
	"github.com/imece/imece/pipeline"
)

// Server is the OpenAI-compatible HTTP API: an http.Handler. Routes added
// with WithRoute share its mux and listener (the dashboard, metrics); the
// server itself answers only under /v1/.
type Server struct {
	gen     Generator
	cfg     config
	mux     *http.ServeMux
	started time.Time
}

type config struct {
	log      *slog.Logger
	keys     [][]byte
	routes   []route
	now      func() time.Time
	maxBody  int64
	timeout  time.Duration
	maxModel int
}

type route struct {
	pattern string
	h       http.Handler
	keyed   bool
}

// Option configures New.
type Option func(*config) error

// WithLogger sets the logger (default slog.Default()).
func WithLogger(l *slog.Logger) Option {
	return func(c *config) error { c.log = l; return nil }
}

// WithKeys requires one of keys as "Authorization: Bearer KEY" on every /v1/
// request; without keys the API is open, which cmd/imece allows only on
// loopback (CheckExposure).
func WithKeys(keys ...string) Option {
	return func(c *config) error {
		for _, k := range keys {
			if k == "" {
				return errors.New("empty API key")
			}
			c.keys = append(c.keys, []byte(k))
		}
		return nil
	}
}

// WithRoute mounts h at pattern (http.ServeMux syntax, e.g. "GET /" or
// "/metrics") on the same listener. Keys do not apply to it: the handler
// decides its own access.
func WithRoute(pattern string, h http.Handler) Option {
	return func(c *config) error {
		if strings.Contains(pattern, "/v1/") {
			return fmt.Errorf("route %q: /v1/ belongs to the API", pattern)
		}
		c.routes = append(c.routes, route{pattern: pattern, h: h})
		return nil
	}
}

// WithKeyedRoute mounts h at pattern like WithRoute, behind the API's keys
// when it has any: the dashboard's data and the metrics tell a node's balance
// and peers, which a node listening beyond loopback keeps to its key holders.
func WithKeyedRoute(pattern string, h http.Handler) Option {
	return func(c *config) error {
		if err := WithRoute(pattern, h)(c); err != nil {
			return err
		}
		c.routes[len(c.routes)-1].keyed = true
		return nil
	}
}

// WithClock sets the clock of "created" timestamps (tests).
func WithClock(now func() time.Time) Option {
	return func(c *config) error { c.now = now; return nil }
}

// WithMaxBody bounds request bodies (default 4 MiB: long conversations fit).
func WithMaxBody(n int64) Option {
	return func(c *config) error {
		if n <= 0 {
			return fmt.Errorf("max body %d must be positive", n)
		}
		c.maxBody = n
		return nil
	}
}

// WithRequestTimeout bounds a generation (default 10 minutes); a client that
// disconnects cancels its generation at once anyway.
func WithRequestTimeout(d time.Duration) Option {
	return func(c *config) error {
		if d <= 0 {
			return fmt.Errorf("request timeout %v must be positive", d)
		}
		c.timeout = d
		return nil
	}
}

// New builds the API on gen.
func New(gen Generator, opts ...Option) (*Server, error) {
	if gen == nil {
		return nil, errors.New("api: no generator")
	}
	cfg := config{log: slog.Default(), now: time.Now, maxBody: 4 << 20, timeout: 10 * time.Minute}
	for _, o := range opts {
		if err := o(&cfg); err != nil {
			return nil, fmt.Errorf("api: %w", err)
		}
	}
	s := &Server{gen: gen, cfg: cfg, mux: http.NewServeMux(), started: cfg.now()}
	s.mux.Handle("/v1/models", s.authorized(http.HandlerFunc(s.models)))
	s.mux.Handle("/v1/models/{model...}", s.authorized(http.HandlerFunc(s.model)))
	s.mux.Handle("/v1/completions", s.authorized(http.HandlerFunc(s.completions)))
	s.mux.Handle("/v1/chat/completions", s.authorized(http.HandlerFunc(s.chatCompletions)))
	s.mux.Handle("/v1/", s.authorized(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		writeError(w, http.StatusNotFound, "invalid_request_error", "not_found", "", fmt.Sprintf("no route %s %s", r.Method, r.URL.Path))
	})))
	for _, rt := range cfg.routes {
		if rt.keyed {
			rt.h = s.authorized(rt.h)
		}
		if err := register(s.mux, rt); err != nil {
			return nil, err
		}
	}
	return s, nil
}

// register mounts a route, turning ServeMux's panic on a conflicting pattern
// into an error.
func register(mux *http.ServeMux, rt route) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("api: route %q: %v", rt.pattern, r)
		}
	}()
	mux.Handle(rt.pattern, rt.h)
	return nil
}

// ServeHTTP implements http.Handler.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) { s.mux.ServeHTTP(w, r) }

// Serve answers on ln until ctx ends, then shuts down, giving running
// requests a few seconds to finish.
func (s *Server) Serve(ctx context.Context, ln net.Listener) error {
	hs := &http.Server{
		Handler:           s,
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       2 * time.Minute,
		BaseContext:       func(net.Listener) context.Context { return ctx },
		ErrorLog:          slog.NewLogLogger(s.cfg.log.Handler(), slog.LevelDebug),
	}
	var wg sync.WaitGroup
	wg.Go(func() {
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := hs.Shutdown(sctx); err != nil {
			hs.Close()
		}
	})
	err := hs.Serve(ln)
	wg.Wait()
	if errors.Is(err, http.ErrServerClosed) {
		return nil
	}
	return err
}

func (s *Server) authorized(h http.Handler) http.Handler {
	if len(s.cfg.keys) == 0 {
		return h
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		tok, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		if !ok || tok == "" {
			writeError(w, http.StatusUnauthorized, "invalid_request_error", "invalid_api_key", "", "missing API key: send Authorization: Bearer KEY")
			return
		}
		match := 0
		for _, k := range s.cfg.keys { // every key compared, in constant time
			match |= subtle.ConstantTimeCompare([]byte(tok), k)
		}
		if match != 1 {
			writeError(w, http.StatusUnauthorized, "invalid_request_error", "invalid_api_key", "", "incorrect API key")
			return
		}
		h.ServeHTTP(w, r)
	})
}

// modelObject is an entry of /v1/models.
type modelObject struct {
	ID      string     `json:"id"`
	Object  string     `json:"object"`
	Created int64      `json:"created"`
	OwnedBy string     `json:"owned_by"`
	Imece   modelExtra `json:"imece"`
}

type modelExtra struct {
	CID           string `json:"cid"`
	Name          string `json:"name,omitempty"`
	ContextLength int    `json:"context_length,omitempty"`
}

// modelObjects lists each model under its name (when it has one) and its CID:
// both are accepted as "model".
func (s *Server) modelObjects(ctx context.Context) []modelObject {
	var out []modelObject
	for _, m := range s.gen.Models(ctx) {
		ext := modelExtra{CID: m.ID, Name: m.Name, ContextLength: m.ContextLength}
		ids := []string{m.ID}
		if m.Name != "" && m.Name != m.ID {
			ids = []string{m.Name, m.ID}
		}
		for _, id := range ids {
			out = append(out, modelObject{ID: id, Object: "model", Created: s.started.Unix(), OwnedBy: m.OwnedBy, Imece: ext})
		}
	}
	return out
}

func (s *Server) models(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet {
		methodNotAllowed(w, r)
		return
	}
	data := s.modelObjects(r.Context())
	if data == nil {
		data = []modelObject{}
	}
	writeJSON(w, http.StatusOK, map[string]any{"object": "list", "data": data})
}

func (s *Server) model(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet {
		methodNotAllowed(w, r)
		return
	}
	want := r.PathValue("model")
	for _, m := range s.modelObjects(r.Context()) {
		if m.ID == want {
			writeJSON(w, http.StatusOK, m)
			return
		}
	}
	writeError(w, http.StatusNotFound, "invalid_request_error", "model_not_found", "model", fmt.Sprintf("the model %q does not exist", want))
}

func methodNotAllowed(w http.ResponseWriter, r *http.Request) {
	writeError(w, http.StatusMethodNotAllowed, "invalid_request_error", "method_not_allowed", "", fmt.Sprintf("%s is not allowed on %s", r.Method, r.URL.Path))
}

func (s *Server) completions(w http.ResponseWriter, r *http.Request) { s.generate(w, r, false) }

func (s *Server) chatCompletions(w http.ResponseWriter, r *http.Request) { s.generate(w, r, true) }

// generate serves both endpoints.
func (s *Server) generate(w http.ResponseWriter, r *http.Request, isChat bool) {
	if r.Method != http.MethodPost {
		methodNotAllowed(w, r)
		return
	}
	var body requestBody
	r.Body = http.MaxBytesReader(w, r.Body, s.cfg.maxBody)
	dec := json.NewDecoder(r.Body)
	if err := dec.Decode(&body); err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			writeError(w, http.StatusRequestEntityTooLarge, "invalid_request_error", "request_too_large", "", fmt.Sprintf("request body exceeds %d bytes", s.cfg.maxBody))
			return
		}
		writeError(w, http.StatusBadRequest, "invalid_request_error", "invalid_json", "", "request body is not valid JSON: "+err.Error())
		return
	}
	req, perr := body.toRequest(isChat)
	if perr != nil {
		writeError(w, http.StatusBadRequest, "invalid_request_error", "invalid_value", perr.param, perr.msg)
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), s.cfg.timeout)
	defer cancel()
	prefix, object := "cmpl-", "text_completion"
	if isChat {
		prefix, object = "chatcmpl-", "chat.completion"
	}
	rs := &response{
		w: w, id: prefix + randomID(), created: s.cfg.now().Unix(), req: req, chat: isChat, object: object,
		stream: body.Stream, includeUsage: body.StreamOptions != nil && body.StreamOptions.IncludeUsage,
	}
	req.OnText = rs.text
	req.OnFallback = func() { rs.fallback = true }
	if !body.Stream {
		req.Restart = func() { rs.buf.Reset() }
	}
	start := time.Now()
	res, err := s.gen.Generate(ctx, req)
	if err != nil {
		status, typ, code := classify(err)
		log := s.cfg.log.Warn
		if status == http.StatusInternalServerError {
			log = s.cfg.log.Error
		}
		if r.Context().Err() != nil {
			log = s.cfg.log.Debug // the client left
		}
		log("API request failed", "id", rs.id, "model", req.Model, "status", status, "err", err)
		rs.fail(status, typ, code, err.Error())
		return
	}
	s.cfg.log.Info("API request", "id", rs.id, "model", res.Model, "prompt_tokens", res.PromptTokens,
		"completion_tokens", res.CompletionTokens, "finish", res.Finish, "cost_milli_gft", res.CostMilliGFT,
		"fallback", res.Fallback, "took", time.Since(start).Round(time.Millisecond))
	rs.finish(res)
}

// classify maps a generation error to its HTTP status and OpenAI error type
// and code.
func classify(err error) (int, string, string) {
	switch {
	case errors.Is(err, ErrBadRequest):
		return http.StatusBadRequest, "invalid_request_error", "invalid_value"
	case errors.Is(err, ErrUnknownModel):
		return http.StatusNotFound, "invalid_request_error", "model_not_found"
	case errors.Is(err, pipeline.ErrPaymentRequired):
		return http.StatusPaymentRequired, "insufficient_quota", "insufficient_credits"
	case errors.Is(err, pipeline.ErrFallback):
		return http.StatusBadGateway, "upstream_error", "fallback_failed"
	case errors.Is(err, pipeline.ErrUncovered):
		return http.StatusServiceUnavailable, "service_unavailable", "no_chain"
	case errors.Is(err, context.DeadlineExceeded):
		return http.StatusGatewayTimeout, "timeout", "timeout"
	}
	return http.StatusInternalServerError, "server_error", "internal_error"
}

func randomID() string {
	var b [12]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// response writes one request's answer: buffered JSON, or a stream of
// server-sent events started at the first text (so a fallback can still be
// announced in the headers).
type response struct {
	w            http.ResponseWriter
	req          *Request // its Model is resolved once generation starts
	id, object   string
	created      int64
	chat, stream bool
	includeUsage bool
	fallback     bool
	started      bool
	buf          strings.Builder
	writeErr     error
	roleSent     bool
}

func (rs *response) text(s string) error {
	if !rs.stream {
		rs.buf.WriteString(s)
		return nil
	}
	rs.start()
	if rs.chat && !rs.roleSent {
		rs.roleSent = true
		if err := rs.event(rs.chunk(map[string]any{"role": "assistant", "content": ""}, nil, "")); err != nil {
			return err
		}
	}
	if rs.chat {
		return rs.event(rs.chunk(map[string]any{"content": s}, nil, ""))
	}
	return rs.event(rs.chunk(nil, &s, ""))
}

func (rs *response) start() {
	if rs.started {
		return
	}
	rs.started = true
	h := rs.w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-cache")
	h.Set("X-Accel-Buffering", "no")
	if rs.fallback {
		h.Set("X-Imece-Fallback", "1")
	}
	rs.w.WriteHeader(http.StatusOK)
}

// chunk builds a stream chunk: a chat delta or a completion text.
func (rs *response) chunk(delta map[string]any, text *string, finish string) map[string]any {
	choice := map[string]any{"index": 0, "finish_reason": nil, "logprobs": nil}
	if finish != "" {
		choice["finish_reason"] = finish
	}
	if rs.chat {
		if delta == nil {
			delta = map[string]any{}
		}
		choice["delta"] = delta
	} else {
		t := ""
		if text != nil {
			t = *text
		}
		choice["text"] = t
	}
	c := map[string]any{"id": rs.id, "object": rs.object, "created": rs.created, "model": rs.req.Model, "choices": []any{choice}}
	if rs.chat {
		c["object"] = "chat.completion.chunk"
	}
	if rs.includeUsage {
		c["usage"] = nil
	}
	return c
}

func (rs *response) event(v any) error {
	if rs.writeErr != nil {
		return rs.writeErr
	}
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	if _, err := fmt.Fprintf(rs.w, "data: %s\n\n", b); err != nil {
		rs.writeErr = fmt.Errorf("client gone: %w", err)
		return rs.writeErr
	}
	if f, ok := rs.w.(http.Flusher); ok {
		f.Flush()
	}
	return nil
}

func usage(res *Result) map[string]int {
	return map[string]int{"prompt_tokens": res.PromptTokens, "completion_tokens": res.CompletionTokens, "total_tokens": res.PromptTokens + res.CompletionTokens}
}

// Extension is the "imece" object of every response: what the request cost
// and who served it.
type Extension struct {
	CostGFT      string `json:"cost_gft"`
	CostMilliGFT int64  `json:"cost_milli_gft"`
	Route        []Hop  `json:"route"`
	Fallback     bool   `json:"fallback"`
}

func extension(res *Result) Extension {
	route := res.Route
	if route == nil {
		route = []Hop{}
	}
	return Extension{
		CostGFT:      strings.TrimSuffix(ledger.FormatGFT(res.CostMilliGFT), " GFT"),
		CostMilliGFT: res.CostMilliGFT, Route: route, Fallback: res.Fallback,
	}
}

func (rs *response) finish(res *Result) {
	if rs.req.Model == "" {
		rs.req.Model = res.Model
	}
	if !rs.stream {
		choice := map[string]any{"index": 0, "finish_reason": res.Finish, "logprobs": nil}
		if rs.chat {
			choice["message"] = map[string]any{"role": "assistant", "content": rs.buf.String()}
		} else {
			choice["text"] = rs.buf.String()
		}
		if res.Fallback {
			rs.w.Header().Set("X-Imece-Fallback", "1")
		}
		writeJSON(rs.w, http.StatusOK, map[string]any{
			"id": rs.id, "object": rs.object, "created": rs.created, "model": rs.req.Model,
			"choices": []any{choice}, "usage": usage(res), "imece": extension(res),
		})
		return
	}
	rs.fallback = rs.fallback || res.Fallback
	rs.start()
	if rs.chat && !rs.roleSent {
		rs.roleSent = true
		rs.event(rs.chunk(map[string]any{"role": "assistant", "content": ""}, nil, ""))
	}
	last := rs.chunk(nil, nil, res.Finish)
	last["imece"] = extension(res)
	rs.event(last)
	if rs.includeUsage {
		rs.event(map[string]any{
			"id": rs.id, "object": last["object"], "created": rs.created, "model": rs.req.Model,
			"choices": []any{}, "usage": usage(res), "imece": extension(res),
		})
	}
	if rs.writeErr == nil {
		fmt.Fprint(rs.w, "data: [DONE]\n\n")
		if f, ok := rs.w.(http.Flusher); ok {
			f.Flush()
		}
	}
}

// fail reports an error: with its status before anything was sent, or as a
// last event of a stream already under way.
func (rs *response) fail(status int, typ, code, msg string) {
	if !rs.started {
		if rs.fallback {
			rs.w.Header().Set("X-Imece-Fallback", "1")
		}
		writeError(rs.w, status, typ, code, "", msg)
		return
	}
	rs.event(map[string]any{"error": errorBody{Message: msg, Type: typ, Code: code}})
	fmt.Fprint(rs.w, "data: [DONE]\n\n")
}

type errorBody struct {
	Message string  `json:"message"`
	Type    string  `json:"type"`
	Param   *string `json:"param"`
	Code    string  `json:"code"`
}

func writeError(w http.ResponseWriter, status int, typ, code, param, msg string) {
	e := errorBody{Message: msg, Type: typ, Code: code}
	if param != "" {
		e.Param = &param
	}
	writeJSON(w, status, map[string]any{"error": e})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		status, b = http.StatusInternalServerError, []byte(`{"error":{"message":"encoding the response failed","type":"server_error","param":null,"code":"internal_error"}}`)
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	w.Write(append(b, '\n'))
}
