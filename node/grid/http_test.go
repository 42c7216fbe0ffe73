package grid

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// apiServer serves canned responses on loopback and counts requests per path.
type apiServer struct {
	*httptest.Server
	mu     sync.Mutex
	hits   map[string]int
	bodies map[string][]byte
	status map[string]int
	header http.Header // of the last request
}

func newAPIServer(t *testing.T, files map[string]string) *apiServer {
	t.Helper()
	s := &apiServer{hits: map[string]int{}, bodies: map[string][]byte{}, status: map[string]int{}}
	for path, file := range files {
		data, err := os.ReadFile(filepath.Join("testdata", file))
		if err != nil {
			t.Fatal(err)
		}
		s.bodies[path] = data
	}
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		s.hits[r.URL.Path]++
		s.header = r.Header.Clone()
		body, ok := s.bodies[r.URL.Path]
		status := s.status[r.URL.Path]
		s.mu.Unlock()
		switch {
		case status != 0:
			http.Error(w, "unavailable", status)
		case !ok:
			http.NotFound(w, r)
		default:
			w.Header().Set("Content-Type", "application/json")
			w.Write(body)
		}
	}))
	t.Cleanup(s.Close)
	return s
}

func (s *apiServer) count(path string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.hits[path]
}

func (s *apiServer) set(path string, status int, body []byte) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.status[path] = status
	if body != nil {
		s.bodies[path] = body
	}
}

// clockAt is a settable clock for the cache.
type clockAt struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clockAt) now() time.Time      { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clockAt) add(d time.Duration) { c.mu.Lock(); defer c.mu.Unlock(); c.t = c.t.Add(d) }

// TestHTTPUKAPI: the intensity and generation endpoints together give both
// terms; responses are cached for the TTL, then fetched again.
func TestHTTPUKAPI(t *testing.T) {
	srv := newAPIServer(t, map[string]string{"/intensity": "uk_intensity.json", "/generation": "uk_generation.json"})
	clk := &clockAt{t: day1(11, 45)}
	h, err := NewHTTP([]string{srv.URL + "/intensity", srv.URL + "/generation"}, WithClock(clk.now))
	if err != nil {
		t.Fatal(err)
	}
	check(t, h, day1(11, 45), reading{117, 0.574})
	check(t, h, day1(12, 10), reading{110, 0.574})
	if a, b := srv.count("/intensity"), srv.count("/generation"); a != 1 || b != 1 {
		t.Fatalf("%d and %d requests, want one each", a, b)
	}
	clk.add(DefaultCacheTTL)
	check(t, h, day1(12, 10), reading{110, 0.574})
	if a := srv.count("/intensity"); a != 2 {
		t.Fatalf("%d requests after the TTL, want 2", a)
	}
	if got := srv.header.Get("Accept"); !strings.Contains(got, "application/json") {
		t.Fatalf("Accept %q", got)
	}
	noReading(t, h, day1(12, 30)) // past the last period
}

// TestHTTPElectricityMaps: the key goes in a header; a "latest" value holds
// for the validity after its hour starts, then the node has no reading.
func TestHTTPElectricityMaps(t *testing.T) {
	srv := newAPIServer(t, map[string]string{"/v3/carbon-intensity/latest": "em_latest.json", "/v3/power-breakdown/latest": "em_power_breakdown.json"})
	clk := &clockAt{t: day1(11, 40)}
	h, err := NewHTTP([]string{srv.URL + "/v3/carbon-intensity/latest?zone=DE", srv.URL + "/v3/power-breakdown/latest?zone=DE"},
		WithClock(clk.now), WithHeader("auth-token", "k3y"))
	if err != nil {
		t.Fatal(err)
	}
	check(t, h, day1(11, 40), reading{302, 0.29})
	if got := srv.header.Get("auth-token"); got != "k3y" {
		t.Fatalf("auth-token %q", got)
	}
	check(t, h, day1(13, 59), reading{302, 0.29})
	noReading(t, h, day1(14, 0))
}

// TestHTTPFallback: when the API fails the last response keeps serving, retries
// back off (30 s, 60 s, …), and a recovered API is used again.
func TestHTTPFallback(t *testing.T) {
	srv := newAPIServer(t, map[string]string{"/latest": "em_latest.json"})
	clk := &clockAt{t: day1(11, 10)}
	var logs bytes.Buffer
	h, err := NewHTTP([]string{srv.URL + "/latest?token=s3cret"}, WithClock(clk.now), WithLogger(slog.New(slog.NewTextHandler(&logs, nil))))
	if err != nil {
		t.Fatal(err)
	}
	check(t, h, day1(11, 10), reading{302, nan})
	srv.set("/latest", http.StatusServiceUnavailable, nil)
	clk.add(DefaultCacheTTL)
	check(t, h, day1(11, 20), reading{302, nan}) // fetch failed: cached value
	if n := srv.count("/latest"); n != 2 {
		t.Fatalf("%d requests", n)
	}
	for _, step := range []struct {
		wait time.Duration
		hits int
	}{{29 * time.Second, 2}, {time.Second, 3}, {59 * time.Second, 3}, {time.Second, 4}} {
		clk.add(step.wait)
		check(t, h, day1(11, 20), reading{302, nan})
		if n := srv.count("/latest"); n != step.hits {
			t.Fatalf("after %v: %d requests, want %d", step.wait, n, step.hits)
		}
	}
	if strings.Contains(logs.String(), "s3cret") {
		t.Fatalf("the URL's query was logged:\n%s", logs.String())
	}
	if !strings.Contains(logs.String(), "503") {
		t.Fatalf("the failure was not logged:\n%s", logs.String())
	}
	// The API still failing and the value out of date: no reading, saying why.
	_, err = h.Reading(context.Background(), day1(15, 0))
	if !errors.Is(err, ErrNoReading) || !errors.Is(err, ErrUnavailable) {
		t.Fatalf("stale and failing: %v", err)
	}
	srv.set("/latest", 0, []byte(`{"carbonIntensity": 90, "datetime": "2025-06-01T12:00:00Z"}`))
	clk.add(10 * time.Minute)
	check(t, h, day1(12, 30), reading{90, nan})
}

// TestHTTPFirstFetchFails: nothing cached and the API down is an error the
// Signal turns into the average grid.
func TestHTTPFirstFetchFails(t *testing.T) {
	srv := newAPIServer(t, nil)
	h, err := NewHTTP([]string{srv.URL + "/missing"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := h.Reading(context.Background(), day1(12, 0)); !errors.Is(err, ErrUnavailable) {
		t.Fatalf("got %v", err)
	}
	sig, _ := NewSignal(h, defaultWeights)
	if v := sig.At(context.Background(), day1(12, 0), 0); v.PGrid != 550 || v.Err == nil {
		t.Fatalf("got %+v", v)
	}
}

// TestHTTPTimeout: a server that never answers costs the timeout, not more.
func TestHTTPTimeout(t *testing.T) {
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done():
		case <-release:
		}
	}))
	defer srv.Close()
	defer close(release)
	h, err := NewHTTP([]string{srv.URL}, WithTimeout(100*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	_, err = h.Reading(context.Background(), day1(12, 0))
	if !errors.Is(err, ErrUnavailable) || !strings.Contains(err.Error(), "deadline") {
		t.Fatalf("got %v", err)
	}
	if el := time.Since(start); el > 5*time.Second {
		t.Fatalf("took %v", el)
	}
	// The caller's deadline counts too.
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	h2, _ := NewHTTP([]string{srv.URL})
	if _, err := h2.Reading(ctx, day1(12, 0)); !errors.Is(err, ErrUnavailable) {
		t.Fatalf("cancelled: %v", err)
	}
}

// TestHTTPBodyCap: a response over the cap is refused, with or without a
// Content-Length.
func TestHTTPBodyCap(t *testing.T) {
	big := `{"carbonIntensity": 100, "datetime": "2025-06-01T12:00:00Z", "pad": "` + strings.Repeat("x", 4096) + `"}`
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/chunked" {
			w.Write([]byte(big[:100]))
			w.(http.Flusher).Flush() // no Content-Length: chunked
			w.Write([]byte(big[100:]))
			return
		}
		w.Header().Set("Content-Length", fmt.Sprint(len(big)))
		w.Write([]byte(big))
	}))
	defer srv.Close()
	for _, path := range []string{"/sized", "/chunked"} {
		h, err := NewHTTP([]string{srv.URL + path}, WithMaxBody(1024))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := h.Reading(context.Background(), day1(12, 0)); !errors.Is(err, ErrTooLarge) {
			t.Fatalf("%s: got %v", path, err)
		}
		h, _ = NewHTTP([]string{srv.URL + path}, WithMaxBody(8192))
		check(t, h, day1(12, 0), reading{100, nan})
	}
}

// TestHTTPMalformed: a response of an unknown shape is a format error, not a
// reading of zeros.
func TestHTTPMalformed(t *testing.T) {
	srv := newAPIServer(t, nil)
	srv.set("/odd", 0, []byte(`{"intensity": "low"}`))
	h, _ := NewHTTP([]string{srv.URL + "/odd"})
	if _, err := h.Reading(context.Background(), day1(12, 0)); !errors.Is(err, ErrFormat) {
		t.Fatalf("got %v", err)
	}
}

func TestNewHTTPRejects(t *testing.T) {
	for _, urls := range [][]string{nil, {"ftp://example.org/x"}, {"/relative"}, {"http://"}, {"http://a", "http://b", "http://c", "http://d", "http://e"}} {
		if _, err := NewHTTP(urls); err == nil {
			t.Errorf("NewHTTP(%q) accepted", urls)
		}
	}
	for _, o := range []Option{WithTimeout(0), WithCacheTTL(-1), WithMaxBody(0), WithHeader("", "x"), WithHTTPClient(nil), WithValidity(0), WithInterpolation(7)} {
		if _, err := NewHTTP([]string{"http://127.0.0.1:1/"}, o); err == nil {
			t.Errorf("bad option accepted")
		}
	}
}
