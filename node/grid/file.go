package grid

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"sync"
	"time"
)

// MaxFileSize bounds a grid file: more than MaxPoints rows of CSV.
const MaxFileSize = 16 << 20

// Defaults of the series sources.
const (
	// DefaultFileValidity is how long a file's last value holds when nothing
	// says when it ends: an hour, the coarsest step of common grid data.
	DefaultFileValidity = time.Hour
	// DefaultHTTPValidity is the same for an API: a "latest" value is dated at
	// the start of its hour and may be published late, so it holds three.
	DefaultHTTPValidity = 3 * time.Hour
)

// Option configures a File or an HTTP source.
type Option func(*sourceConfig) error

type sourceConfig struct {
	interp   Interpolation
	validity time.Duration
	log      *slog.Logger
	now      func() time.Time

	httpOnly string // the name of an HTTP option given, which a File refuses
	client   *http.Client
	header   http.Header
	timeout  time.Duration
	ttl      time.Duration
	maxBody  int64
}

// WithInterpolation says what the source gives between two values (default
// Step).
func WithInterpolation(i Interpolation) Option {
	return func(c *sourceConfig) error {
		if i != Step && i != Linear {
			return fmt.Errorf("grid: interpolation %d", i)
		}
		c.interp = i
		return nil
	}
}

// WithValidity sets how long the last value holds when the data does not say
// when it ends (default DefaultFileValidity, DefaultHTTPValidity). After that
// the source has no reading and the node advertises the average grid: stale
// data should not keep a node looking green.
func WithValidity(d time.Duration) Option {
	return func(c *sourceConfig) error {
		if d <= 0 {
			return fmt.Errorf("grid: validity %v must be positive", d)
		}
		c.validity = d
		return nil
	}
}

// WithLogger sets the logger (default: none).
func WithLogger(l *slog.Logger) Option {
	return func(c *sourceConfig) error { c.log = l; return nil }
}

// WithClock sets what an HTTP source takes for now, to age its cache and pace
// its retries (default time.Now). A File has no use for it.
func WithClock(now func() time.Time) Option {
	return func(c *sourceConfig) error { c.now = now; return nil }
}

// File is a Source reading a local time series file (JSON or CSV, see doc.go).
// It checks the file's size and modification time at every reading and loads
// it again when they change; a new version that does not parse is logged and
// the previous one kept.
type File struct {
	path string
	cfg  sourceConfig

	mu     sync.Mutex
	s      *series
	mod    time.Time
	size   int64
	badMod time.Time // modification time of a version that failed, logged once
}

// NewFile loads the series in path. It fails when the file cannot be read or
// parsed, so that a mistyped --grid-file stops the node at start-up.
func NewFile(path string, opts ...Option) (*File, error) {
	cfg := sourceConfig{validity: DefaultFileValidity, log: slog.New(slog.DiscardHandler), now: time.Now}
	for _, o := range opts {
		if err := o(&cfg); err != nil {
			return nil, err
		}
	}
	if cfg.httpOnly != "" {
		return nil, fmt.Errorf("grid: %s applies to HTTP sources, not files", cfg.httpOnly)
	}
	f := &File{path: path, cfg: cfg}
	fi, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("grid: %w", err)
	}
	if err := f.load(fi); err != nil {
		return nil, err
	}
	return f, nil
}

// Reading returns the series' value at at, after reloading the file if it
// changed.
func (f *File) Reading(_ context.Context, at time.Time) (Reading, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if fi, err := os.Stat(f.path); err == nil && (!fi.ModTime().Equal(f.mod) || fi.Size() != f.size) && !fi.ModTime().Equal(f.badMod) {
		if err := f.load(fi); err != nil {
			f.badMod = fi.ModTime()
			f.cfg.log.Warn("grid file not reloaded, keeping the previous version", "path", f.path, "err", err)
		}
	}
	return f.s.at(at)
}

// load reads and parses the file; on success it replaces the series.
func (f *File) load(fi os.FileInfo) error {
	if fi.Size() > MaxFileSize {
		return fmt.Errorf("%w: %s is %d bytes, more than %d", ErrTooLarge, f.path, fi.Size(), MaxFileSize)
	}
	fh, err := os.Open(f.path)
	if err != nil {
		return fmt.Errorf("grid: %w", err)
	}
	defer fh.Close()
	data, err := io.ReadAll(io.LimitReader(fh, MaxFileSize+1))
	if err != nil {
		return fmt.Errorf("grid: read %s: %w", f.path, err)
	}
	if len(data) > MaxFileSize {
		return fmt.Errorf("%w: %s is more than %d bytes", ErrTooLarge, f.path, MaxFileSize)
	}
	pts, daily, err := parseData(data)
	if err != nil {
		return fmt.Errorf("%s: %w", f.path, err)
	}
	s, err := newSeries(pts, daily, f.cfg.interp, f.cfg.validity)
	if err != nil {
		return fmt.Errorf("%s: %w", f.path, err)
	}
	f.s, f.mod, f.size = s, fi.ModTime(), fi.Size()
	f.cfg.log.Debug("grid file loaded", "path", f.path, "values", len(s.points), "daily", daily)
	return nil
}
