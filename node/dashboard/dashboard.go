package dashboard

import (
	"context"
	_ "embed"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"github.com/ipfs/go-cid"
	kaddht "github.com/libp2p/go-libp2p-kad-dht"

	"github.com/imece/imece/dht"
	"github.com/imece/imece/node"
	"github.com/imece/imece/pipeline"
)

//go:embed index.html
var page []byte

// Option configures New.
type Option func(*config) error

type config struct {
	models []cid.Cid
	log    *slog.Logger
	now    func() time.Time
}

// WithModels adds models to show the coverage of, besides the one the node
// serves and those its ledger knows: the model an API node offers, say,
// before anyone used it.
func WithModels(ids ...cid.Cid) Option {
	return func(c *config) error {
		for _, id := range ids {
			if !id.Defined() {
				return errors.New("dashboard: undefined model CID")
			}
		}
		c.models = append(c.models, ids...)
		return nil
	}
}

// WithLogger receives what the dashboard could not read or watch.
func WithLogger(l *slog.Logger) Option {
	return func(c *config) error {
		if l == nil {
			return errors.New("dashboard: nil logger")
		}
		c.log = l
		return nil
	}
}

// WithClock sets the clock of the token rates (tests).
func WithClock(now func() time.Time) Option {
	return func(c *config) error {
		if now == nil {
			return errors.New("dashboard: nil clock")
		}
		c.now = now
		return nil
	}
}

// Dashboard serves a node's page and its status. Mount it at the root of a
// listener: it answers GET / and GET /api/status. Close it before the node.
type Dashboard struct {
	n      *node.Node
	cfg    config
	mux    *http.ServeMux
	detach func()
	client rateMeter
	stage  rateMeter

	mu      sync.Mutex
	closed  bool
	watches map[cid.Cid]*dht.Coverage
}

// New makes the dashboard of n and starts counting its tokens.
func New(n *node.Node, opts ...Option) (*Dashboard, error) {
	if n == nil {
		return nil, errors.New("dashboard: nil node")
	}
	cfg := config{log: slog.New(slog.DiscardHandler), now: time.Now}
	for _, o := range opts {
		if err := o(&cfg); err != nil {
			return nil, err
		}
	}
	d := &Dashboard{n: n, cfg: cfg, mux: http.NewServeMux(), watches: map[cid.Cid]*dht.Coverage{}}
	d.mux.HandleFunc("GET /{$}", d.servePage)
	d.mux.HandleFunc("GET /api/status", d.serveStatus)
	d.detach = n.Observe(&pipeline.Observer{
		Token: func(pipeline.TokenEvent) { d.client.add(d.cfg.now(), 1) },
		Forwarded: func(e pipeline.ForwardEvent) {
			if e.Token {
				d.stage.add(d.cfg.now(), 1)
			}
		},
	})
	return d, nil
}

// ServeHTTP serves GET / (the page) and GET /api/status (JSON).
func (d *Dashboard) ServeHTTP(w http.ResponseWriter, r *http.Request) { d.mux.ServeHTTP(w, r) }

// Close stops counting and watching.
func (d *Dashboard) Close() error {
	d.detach()
	d.mu.Lock()
	defer d.mu.Unlock()
	d.closed = true
	var errs []error
	for _, w := range d.watches {
		errs = append(errs, w.Close())
	}
	d.watches = nil
	return errors.Join(errs...)
}

func (d *Dashboard) servePage(w http.ResponseWriter, _ *http.Request) {
	h := w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Cache-Control", "no-cache")
	// Everything is inline: the page needs nothing from anywhere.
	h.Set("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'; script-src 'unsafe-inline'; connect-src 'self'; img-src data:")
	w.Write(page)
}

func (d *Dashboard) serveStatus(w http.ResponseWriter, _ *http.Request) {
	s := d.status()
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	if err := json.NewEncoder(w).Encode(s); err != nil {
		d.cfg.log.Debug("dashboard status not sent", "err", err)
	}
}

// watched returns the coverage views of the models to show, watching those
// not watched yet.
func (d *Dashboard) watched() []*dht.Coverage {
	served, _, _ := d.n.Serving()
	ids := modelList(served, d.n.KnownModels(), d.cfg.models)
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closed {
		return nil
	}
	out := make([]*dht.Coverage, 0, len(ids))
	for _, id := range ids {
		w := d.watches[id]
		if w == nil {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			var err error
			// 0 layers: the count the records agree on.
			w, err = d.n.Discovery().Watch(ctx, id, 0)
			cancel()
			if err != nil {
				d.cfg.log.Warn("dashboard: model not watched", "model", id, "err", err)
				continue
			}
			d.watches[id] = w
		}
		out = append(out, w)
	}
	return out
}

// routingTableSize is the number of peers in the node's Kademlia routing
// table, 0 when the DHT is not the Kademlia one.
func routingTableSize(n *node.Node) int {
	if d, ok := n.Discovery().Routing().(*kaddht.IpfsDHT); ok {
		return d.RoutingTable().Size()
	}
	return 0
}
