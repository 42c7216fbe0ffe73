package testnet

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/ipfs/go-cid"

	"github.com/imece/imece/assets"
	"github.com/imece/imece/dht"
	"github.com/imece/imece/kernels"
	"github.com/imece/imece/ledger"
	"github.com/imece/imece/node"
	"github.com/imece/imece/pipeline"
	"github.com/imece/imece/pipeline/model"
)

type config struct {
	nodes   int
	model   *model.Model
	dir     string
	log     *slog.Logger
	threads int
	ttl     time.Duration
	split   [][2]int
	autoMax int
	genesis *ledger.Genesis
	perVol  func(i int) []node.Option
}

// Option configures Start.
type Option func(*config) error

// WithNodes sets how many volunteers serve the model (default 3).
func WithNodes(n int) Option {
	return func(c *config) error {
		if n < 1 {
			return fmt.Errorf("a network needs at least one node, not %d", n)
		}
		c.nodes = n
		return nil
	}
}

// WithModel serves m instead of the embedded stories260K. The caller closes it.
func WithModel(m *model.Model) Option { return func(c *config) error { c.model = m; return nil } }

// WithSplit gives each volunteer its layers explicitly (replicas allowed) instead
// of an even split; it sets the number of nodes.
func WithSplit(ranges ...[2]int) Option {
	return func(c *config) error { c.split = ranges; c.nodes = len(ranges); return nil }
}

// WithAutoLayers makes every volunteer choose its own layers as `--layers auto`
// does, each serving at most maxLayers, started one after another so each sees
// the ones before.
func WithAutoLayers(maxLayers int) Option {
	return func(c *config) error {
		if maxLayers < 1 {
			return fmt.Errorf("auto layers: at most %d layers per node", maxLayers)
		}
		c.autoMax = maxLayers
		return nil
	}
}

// WithGenesis runs the network on g instead of the default local network.
func WithGenesis(g *ledger.Genesis) Option {
	return func(c *config) error { c.genesis = g; return nil }
}

// WithVolunteerOptions gives volunteer i (from 0, in start order) extra node
// options: its own grid signal, hardware claim or a fault to catch.
func WithVolunteerOptions(f func(i int) []node.Option) Option {
	return func(c *config) error { c.perVol = f; return nil }
}

// WithDir keeps the nodes' data directories under dir (default: a temporary
// directory removed by Close).
func WithDir(dir string) Option { return func(c *config) error { c.dir = dir; return nil } }

// WithLogger sets the logger every node logs to, tagged with its name.
func WithLogger(l *slog.Logger) Option { return func(c *config) error { c.log = l; return nil } }

// WithThreads bounds the CPU threads of the shared backend.
func WithThreads(n int) Option { return func(c *config) error { c.threads = n; return nil } }

// WithRecordTTL shortens node records' lifetime so departures show quickly.
func WithRecordTTL(d time.Duration) Option { return func(c *config) error { c.ttl = d; return nil } }

// Network is a running local network: a bootstrap node and volunteers.
type Network struct {
	cfg        config
	Model      *model.Model
	ModelID    cid.Cid
	Bootstrap  *node.Node
	Volunteers []*node.Node
	backend    kernels.Backend
	tmp        string

	mu      sync.Mutex
	clients []*node.Node
}

// Split divides layers among n nodes as evenly as possible, in order; with more
// nodes than layers, the extra nodes repeat the split (replicas).
func Split(layers, n int) [][2]int {
	parts := min(n, layers)
	out := make([][2]int, 0, n)
	for i := 0; i < n; i++ {
		k := i % parts
		out = append(out, [2]int{k * layers / parts, (k + 1) * layers / parts})
	}
	return out
}

// Start brings up a bootstrap node and the volunteers, each announcing its
// layers, and returns once every node has started.
func Start(ctx context.Context, opts ...Option) (_ *Network, err error) {
	cfg := config{nodes: 3, log: slog.New(slog.DiscardHandler), ttl: 30 * time.Second}
	for _, o := range opts {
		if err := o(&cfg); err != nil {
			return nil, err
		}
	}
	n := &Network{cfg: cfg, Model: cfg.model}
	defer func() {
		if err != nil {
			n.Close()
		}
	}()
	if n.Model == nil {
		if n.Model, err = model.FromGGUF(assets.DefaultModel); err != nil {
			return nil, err
		}
		n.Model.Path = assets.DefaultModelName
	}
	if n.ModelID, err = n.Model.CID(); err != nil {
		return nil, err
	}
	if cfg.dir == "" {
		if n.tmp, err = os.MkdirTemp("", "imece-testnet-"); err != nil {
			return nil, err
		}
		n.cfg.dir = n.tmp
	}
	var bopts []kernels.Option
	if cfg.threads > 0 {
		bopts = append(bopts, kernels.WithThreads(cfg.threads))
	}
	if n.backend, err = kernels.NewCPU(bopts...); err != nil {
		return nil, err
	}
	if n.Bootstrap, err = n.start(ctx, "bootstrap", nil); err != nil {
		return nil, err
	}
	boot := n.Bootstrap.Addrs()[0].String()
	split := cfg.split
	if split == nil {
		split = Split(n.Model.Config.Layers, cfg.nodes)
	}
	for i, r := range split {
		layers := node.Layers{First: r[0], Last: r[1]}
		if cfg.autoMax > 0 {
			layers = node.Layers{Auto: true, MaxLayers: cfg.autoMax}
		}
		vopts := []node.Option{node.WithBootstrap(boot), node.WithServe(n.Model, n.backend, layers)}
		if cfg.perVol != nil {
			vopts = append(vopts, cfg.perVol(i)...)
		}
		v, err := n.start(ctx, fmt.Sprintf("node%d", i+1), vopts)
		if err != nil {
			return nil, fmt.Errorf("node %d: %w", i+1, err)
		}
		n.Volunteers = append(n.Volunteers, v)
	}
	return n, nil
}

// dhtTimings are the record timings of a local network: short enough that a node
// that dies without withdrawing disappears within seconds.
func (n *Network) dhtTimings() []dht.Option {
	ttl := n.cfg.ttl
	return []dht.Option{dht.WithRecordTTL(ttl, ttl/3), dht.WithRefreshInterval(ttl / 3)}
}

func (n *Network) start(ctx context.Context, name string, extra []node.Option) (*node.Node, error) {
	opts := []node.Option{
		node.WithDataDir(filepath.Join(n.cfg.dir, name)),
		node.WithListen("/ip4/127.0.0.1/tcp/0"),
		node.WithNAT(false),
		node.WithNodeLogger(n.cfg.log.With("node", name)),
		node.WithDHTOptions(n.dhtTimings()...),
	}
	if n.cfg.genesis != nil {
		opts = append(opts, node.WithGenesis(n.cfg.genesis))
	}
	return node.Start(ctx, append(opts, extra...)...)
}

// Restart starts again, on its data directory (same identity, same ledger), a node
// of the network that was closed: a node coming back after being offline.
func (n *Network) Restart(ctx context.Context, name string, extra ...node.Option) (*node.Node, error) {
	return n.start(ctx, name, append([]node.Option{node.WithBootstrap(n.Bootstrap.Addrs()[0].String())}, extra...))
}

// AddVolunteer starts one more volunteer serving layers [first, last): a late
// joiner.
func (n *Network) AddVolunteer(ctx context.Context, first, last int) (*node.Node, error) {
	v, err := n.start(ctx, fmt.Sprintf("node%d", len(n.Volunteers)+1), []node.Option{
		node.WithBootstrap(n.Bootstrap.Addrs()[0].String()),
		node.WithServe(n.Model, n.backend, node.Layers{First: first, Last: last}),
	})
	if err != nil {
		return nil, err
	}
	n.mu.Lock()
	n.Volunteers = append(n.Volunteers, v)
	n.mu.Unlock()
	return v, nil
}

// Client starts a light client: a node that serves nothing and holds no weights;
// extra options configure it (audits, for instance).
func (n *Network) Client(ctx context.Context, extra ...node.Option) (*node.Node, error) {
	n.mu.Lock()
	name := fmt.Sprintf("client%d", len(n.clients)+1)
	n.mu.Unlock()
	c, err := n.start(ctx, name, append([]node.Option{node.WithBootstrap(n.Bootstrap.Addrs()[0].String()), node.WithClientMode()}, extra...))
	if err != nil {
		return nil, err
	}
	n.mu.Lock()
	n.clients = append(n.clients, c)
	n.mu.Unlock()
	return c, nil
}

// Generate starts a light client and generates through the network.
func (n *Network) Generate(ctx context.Context, req pipeline.Request, opts ...pipeline.RemoteOption) (pipeline.Result, error) {
	c, err := n.Client(ctx)
	if err != nil {
		return pipeline.Result{}, err
	}
	m, err := c.OpenModel(ctx, n.ModelID, node.DefaultCoverageWait)
	if err != nil {
		return pipeline.Result{}, err
	}
	defer m.Close()
	return m.Generate(ctx, req, opts...)
}

// Clients are the light clients started so far.
func (n *Network) Clients() []*node.Node {
	n.mu.Lock()
	defer n.mu.Unlock()
	return append([]*node.Node(nil), n.clients...)
}

// Close stops every node and removes the temporary directory.
func (n *Network) Close() error {
	var errs []error
	n.mu.Lock()
	nodes := append(append([]*node.Node{}, n.clients...), n.Volunteers...)
	n.mu.Unlock()
	for _, v := range nodes {
		errs = append(errs, v.Close())
	}
	if n.Bootstrap != nil {
		errs = append(errs, n.Bootstrap.Close())
	}
	if n.backend != nil {
		errs = append(errs, n.backend.Close())
	}
	if n.cfg.model == nil && n.Model != nil {
		errs = append(errs, n.Model.Close())
	}
	if n.tmp != "" {
		errs = append(errs, os.RemoveAll(n.tmp))
	}
	return errors.Join(errs...)
}
