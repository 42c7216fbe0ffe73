package grid

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"sync"
	"time"
)

// Defaults and bounds of the HTTP source.
const (
	// DefaultHTTPTimeout bounds one request, connection to last byte.
	DefaultHTTPTimeout = 10 * time.Second
	// DefaultCacheTTL is how long a response is used before it is fetched
	// again. Grid data changes every 30 to 60 minutes and free API tiers are
	// rate-limited, while a node reads its signal every few seconds.
	DefaultCacheTTL = 10 * time.Minute
	// DefaultMaxBody bounds a response: a UK regional 48-hour forecast with its
	// generation mix is about 100 kB.
	DefaultMaxBody = 2 << 20
	// MaxURLs bounds the URLs one source combines.
	MaxURLs = 4
	// minRetry is the wait after a first failed fetch; it doubles with every
	// failure in a row, up to the cache TTL, so a failing API is not hammered.
	minRetry = 30 * time.Second
)

// WithHTTPClient sets the client (default: a new http.Client; the source sets
// the per-request deadline itself).
func WithHTTPClient(cl *http.Client) Option {
	return func(c *sourceConfig) error {
		if cl == nil {
			return errors.New("grid: nil HTTP client")
		}
		c.client, c.httpOnly = cl, "WithHTTPClient"
		return nil
	}
}

// WithHeader adds a request header, for instance Electricity Maps' key:
// WithHeader("auth-token", key).
func WithHeader(name, value string) Option {
	return func(c *sourceConfig) error {
		if name == "" {
			return errors.New("grid: empty header name")
		}
		if c.header == nil {
			c.header = http.Header{}
		}
		c.header.Add(name, value)
		c.httpOnly = "WithHeader"
		return nil
	}
}

// WithTimeout bounds each request (default DefaultHTTPTimeout).
func WithTimeout(d time.Duration) Option {
	return func(c *sourceConfig) error {
		if d <= 0 {
			return fmt.Errorf("grid: timeout %v must be positive", d)
		}
		c.timeout, c.httpOnly = d, "WithTimeout"
		return nil
	}
}

// WithCacheTTL sets how long a response is used before the next fetch (default
// DefaultCacheTTL).
func WithCacheTTL(d time.Duration) Option {
	return func(c *sourceConfig) error {
		if d <= 0 {
			return fmt.Errorf("grid: cache TTL %v must be positive", d)
		}
		c.ttl, c.httpOnly = d, "WithCacheTTL"
		return nil
	}
}

// WithMaxBody bounds a response's size (default DefaultMaxBody).
func WithMaxBody(n int64) Option {
	return func(c *sourceConfig) error {
		if n <= 0 {
			return fmt.Errorf("grid: body limit %d must be positive", n)
		}
		c.maxBody, c.httpOnly = n, "WithMaxBody"
		return nil
	}
}

// HTTP is a Source that polls carbon-intensity APIs: the UK Carbon Intensity
// API, Electricity Maps, or any endpoint serving the native JSON shape (doc.go
// lists the shapes). With several URLs it combines them, the first giving a
// value winning: an API's intensity endpoint and its generation-mix endpoint
// together give both grid terms.
//
// Each response is cached for the TTL and read for whatever time is asked, so a
// forecast response (the UK API's /fw24h) serves a day. When a fetch fails the
// previous response keeps serving until its values stop holding (WithValidity);
// then the source has no reading and the node falls back to the average grid.
// Failed fetches are retried after 30 s, doubling up to the TTL.
type HTTP struct {
	cfg   sourceConfig
	mu    sync.Mutex // held across fetches: one request per URL at a time
	feeds []feed
}

// feed is one URL and what was last fetched from it.
type feed struct {
	url      string
	name     string // the URL without its query, for logs and errors
	s        *series
	next     time.Time // earliest next fetch
	failures int
	err      error // of the last fetch
}

// NewHTTP makes a source polling urls (http or https, at most MaxURLs). It
// fetches nothing until the first reading.
func NewHTTP(urls []string, opts ...Option) (*HTTP, error) {
	cfg := sourceConfig{
		validity: DefaultHTTPValidity, log: slog.New(slog.DiscardHandler), now: time.Now,
		timeout: DefaultHTTPTimeout, ttl: DefaultCacheTTL, maxBody: DefaultMaxBody,
	}
	for _, o := range opts {
		if err := o(&cfg); err != nil {
			return nil, err
		}
	}
	if cfg.client == nil {
		cfg.client = &http.Client{}
	}
	if len(urls) == 0 || len(urls) > MaxURLs {
		return nil, fmt.Errorf("grid: %d URLs, want 1 to %d", len(urls), MaxURLs)
	}
	h := &HTTP{cfg: cfg}
	for _, raw := range urls {
		u, err := url.Parse(raw)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return nil, fmt.Errorf("grid: URL %q: want http:// or https://", raw)
		}
		h.feeds = append(h.feeds, feed{url: raw, name: u.Scheme + "://" + u.Host + u.EscapedPath()})
	}
	return h, nil
}

// Reading returns the grid's state at at from the cached responses, fetching
// those that are due first.
func (h *HTTP) Reading(ctx context.Context, at time.Time) (Reading, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	now := h.cfg.now()
	var out Reading
	var errs []error
	for i := range h.feeds {
		f := &h.feeds[i]
		if !now.Before(f.next) {
			h.refresh(ctx, f, now)
		}
		if f.s == nil {
			errs = append(errs, f.err)
			continue
		}
		r, err := f.s.at(at)
		if err != nil {
			if f.err != nil {
				err = fmt.Errorf("%w (and the last fetch failed: %w)", err, f.err)
			}
			errs = append(errs, err)
			continue
		}
		if r.HasCarbon && !out.HasCarbon {
			out.Carbon, out.HasCarbon, out.At = r.Carbon, true, r.At
		}
		if r.HasRenewable && !out.HasRenewable {
			out.Renewable, out.HasRenewable = r.Renewable, true
			if out.At.IsZero() {
				out.At = r.At
			}
		}
	}
	if !out.HasCarbon && !out.HasRenewable {
		return Reading{}, errors.Join(errs...)
	}
	return out, nil
}

// refresh fetches f's URL, keeping the previous series when that fails.
func (h *HTTP) refresh(ctx context.Context, f *feed, now time.Time) {
	s, err := h.fetch(ctx, f)
	if err != nil {
		f.failures++
		f.err = err
		wait := h.cfg.ttl
		if f.failures < 16 {
			wait = min(minRetry<<(f.failures-1), h.cfg.ttl)
		}
		f.next = now.Add(wait)
		h.cfg.log.Warn("grid data not fetched", "url", f.name, "failures", f.failures, "retry_in", wait, "err", err)
		return
	}
	f.s, f.err, f.failures, f.next = s, nil, 0, now.Add(h.cfg.ttl)
	h.cfg.log.Debug("grid data fetched", "url", f.name, "values", len(s.points))
}

func (h *HTTP) fetch(ctx context.Context, f *feed) (*series, error) {
	ctx, cancel := context.WithTimeout(ctx, h.cfg.timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, f.url, nil)
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %v", ErrUnavailable, f.name, err)
	}
	for k, vs := range h.cfg.header {
		req.Header[k] = append([]string(nil), vs...)
	}
	req.Header.Set("Accept", "application/json, text/csv;q=0.9")
	resp, err := h.cfg.client.Do(req)
	if err != nil {
		// The error names the URL with its query; keep keys out of logs.
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return nil, fmt.Errorf("%w: %s: %v", ErrUnavailable, f.name, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("%w: %s: %s", ErrUnavailable, f.name, resp.Status)
	}
	if resp.ContentLength > h.cfg.maxBody {
		return nil, fmt.Errorf("%w: %s: %d bytes, more than %d", ErrTooLarge, f.name, resp.ContentLength, h.cfg.maxBody)
	}
	data, err := io.ReadAll(io.LimitReader(resp.Body, h.cfg.maxBody+1))
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %v", ErrUnavailable, f.name, err)
	}
	if int64(len(data)) > h.cfg.maxBody {
		return nil, fmt.Errorf("%w: %s: more than %d bytes", ErrTooLarge, f.name, h.cfg.maxBody)
	}
	pts, daily, err := parseData(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", f.name, err)
	}
	s, err := newSeries(pts, daily, h.cfg.interp, h.cfg.validity)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", f.name, err)
	}
	return s, nil
}
