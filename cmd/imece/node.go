package main

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/imece/imece/node"
	"github.com/imece/imece/node/api"
	"github.com/imece/imece/node/dashboard"
	"github.com/imece/imece/node/hardware"
	"github.com/imece/imece/node/metrics"
	"github.com/imece/imece/pipeline"
)

type nodeFlags struct {
	data        string
	listen      []string
	bootstrap   []string
	model       string
	layers      string
	threads     int
	backend     string
	mdns        bool
	nat         bool
	maxSessions int
	maxLayers   int
	genesis     string
	grid        gridFlags
	bench       bool
	auditRate   float64
	canaryEvery time.Duration
	api         apiFlags
}

func (a *app) nodeCmd() *cobra.Command {
	var f nodeFlags
	cmd := &cobra.Command{
		Use:   "node",
		Short: "Run a node: a volunteer serving layers of a model, or a bootstrap node",
		Long: `Node joins the mesh and stays until interrupted (SIGINT or SIGTERM), then leaves
cleanly: it withdraws its announcement and fails open sessions with a clear error,
so their clients re-plan.

With --model it is a volunteer: it serves the layers given by --layers (a:b, or
auto for the range the network covers least that fits this machine's memory) and
announces them in the DHT. Without --model it serves nothing and helps others find
each other: a bootstrap node.

At start it prints its full multiaddrs, one per line: pass one to other nodes as
--bootstrap.`,
		Example: `  imece node --data ./boot --listen /ip4/0.0.0.0/tcp/4001
  imece node --data ./vol1 --bootstrap /ip4/10.0.0.1/tcp/4001/p2p/12D3KooW... \
      --model tinyllama.gguf --layers auto`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return a.runNode(cmd.Context(), f) },
	}
	fl := cmd.Flags()
	fl.StringVar(&f.data, "data", "", "directory for the node's identity (default: the user config dir's imece/node)")
	fl.StringArrayVar(&f.listen, "listen", []string{"/ip4/0.0.0.0/tcp/4001", "/ip4/0.0.0.0/udp/4001/quic-v1"}, "multiaddr to listen on (repeatable)")
	fl.StringArrayVar(&f.bootstrap, "bootstrap", nil, "multiaddr of a node to join through (repeatable)")
	fl.StringVar(&f.model, "model", "", "GGUF file or HuggingFace directory to serve layers of")
	fl.StringVar(&f.layers, "layers", "auto", "layers to serve: a:b (first inclusive, last exclusive) or auto")
	fl.IntVar(&f.threads, "threads", 0, "CPU threads (default: all cores)")
	backendFlag(cmd, &f.backend)
	fl.BoolVar(&f.mdns, "mdns", true, "find peers on the local network with mDNS")
	fl.BoolVar(&f.nat, "nat", true, "AutoNAT, hole punching and relay client for nodes behind NAT")
	fl.IntVar(&f.maxSessions, "max-sessions", 0, "sessions served at once (default 16)")
	genesisFlag(cmd, &f.genesis)
	f.grid.register(cmd)
	fl.BoolVar(&f.bench, "bench", true, "benchmark the hardware at start when DIR/hardware.json holds no claim of this device (imece bench), and advertise its tier")
	fl.IntVar(&f.maxLayers, "max-layers", 0, "with --layers auto, serve at most this many layers (default: what fits in half the available memory)")
	fl.Float64Var(&f.auditRate, "audit-rate", pipeline.DefaultAuditRate, "the share of hops audited by other replicas when this node generates through the mesh (0 to 1); nodes under watch are audited 4× as often")
	fl.DurationVar(&f.canaryEvery, "canary-every", 0, "with --model, send a canary (a prompt this node answers on its own weights) through other nodes' chains about this often, e.g. 30m; 0 sends none")
	f.api.register(cmd, true)
	return cmd
}

// parseLayers reads --layers: "auto" or "a:b".
func parseLayers(s string) (node.Layers, error) {
	if s == "auto" {
		return node.Layers{Auto: true}, nil
	}
	a, b, ok := strings.Cut(s, ":")
	first, err1 := strconv.Atoi(a)
	last, err2 := strconv.Atoi(b)
	if !ok || err1 != nil || err2 != nil || first < 0 || first >= last {
		return node.Layers{}, fmt.Errorf("--layers %q: want auto or a:b with 0 <= a < b", s)
	}
	return node.Layers{First: first, Last: last}, nil
}

func (a *app) runNode(ctx context.Context, f nodeFlags) error {
	layers, err := parseLayers(f.layers)
	if err != nil {
		return err
	}
	if f.threads < 0 || f.maxSessions < 0 || f.maxLayers < 0 || f.canaryEvery < 0 {
		return fmt.Errorf("--threads, --max-sessions, --max-layers and --canary-every must not be negative")
	}
	if !(f.auditRate >= 0 && f.auditRate <= 1) {
		return fmt.Errorf("--audit-rate %v: want 0 to 1", f.auditRate)
	}
	if f.canaryEvery > 0 && (f.model == "" || f.auditRate == 0) {
		return fmt.Errorf("--canary-every needs --model (the node answers its canaries on its own weights) and a non-zero --audit-rate (audits judge the chains that answer wrong)")
	}
	apiKeys, err := f.api.check()
	if err != nil {
		return err
	}
	fb, err := f.api.fallback()
	if err != nil {
		return err
	}
	layers.MaxLayers = f.maxLayers
	if f.data == "" {
		if f.data, err = defaultDataDir("node"); err != nil {
			return err
		}
	}
	g, err := loadGenesis(f.genesis)
	if err != nil {
		return err
	}
	opts := []node.Option{
		node.WithDataDir(f.data), node.WithListen(f.listen...), node.WithBootstrap(f.bootstrap...),
		node.WithLAN(f.mdns), node.WithNAT(f.nat), node.WithNodeLogger(a.log), node.WithGenesis(g),
		node.WithAudits(f.auditRate),
	}
	src, err := f.grid.source(a.log)
	if err != nil {
		return err
	}
	if src != nil && f.model == "" {
		return fmt.Errorf("--grid-file, --grid-url and --grid-zone describe a volunteer's grid: they need --model")
	}
	if f.model != "" {
		m, be, release, err := a.loadModel(f.model, f.threads, f.backend)
		if err != nil {
			return err
		}
		defer release()
		opts = append(opts, node.WithServe(m, be, layers))
		if src != nil {
			opts = append(opts, node.WithGrid(src))
		}
		if f.bench {
			c, err := hardware.LoadOrMeasure(ctx, f.data, be, hardware.WithLogger(a.log), hardware.WithTiers(g.Tiers))
			if err != nil {
				return fmt.Errorf("hardware claim: %w", err)
			}
			opts = append(opts, node.WithHardware(c))
		}
		if f.maxSessions > 0 {
			opts = append(opts, node.WithServerOptions(pipeline.WithMaxSessions(f.maxSessions)))
		}
		if f.canaryEvery > 0 {
			opts = append(opts, node.WithCanaries(f.canaryEvery))
		}
	}
	n, err := node.Start(ctx, opts...)
	if err != nil {
		return err
	}
	for _, addr := range n.Addrs() {
		fmt.Fprintln(a.stdout, addr)
	}
	if id, r, ok := n.Serving(); ok {
		fmt.Fprintf(a.stderr, "imece: serving layers %v of model %s\n", r, id)
	} else {
		fmt.Fprintln(a.stderr, "imece: bootstrap node, serving no layers")
	}
	stopAPI := func() error { return nil }
	if f.api.addr != "" {
		var meshOpts []api.MeshOption
		if id, _, ok := n.Serving(); ok {
			meshOpts = append(meshOpts, api.MeshName(id, modelName(f.model)))
		}
		mesh := api.NewMesh(n, append(meshOpts, api.MeshLogger(a.log))...)
		var gen api.Generator = mesh
		if fb != nil {
			gen = api.WithFallback(mesh, fb, a.log)
		}
		// The dashboard and the metrics share the API's listener; their data
		// (balance, peers) is behind the API's keys when it has any.
		met, err := metrics.New(n, metrics.WithLogger(a.log))
		if err != nil {
			return errors.Join(err, mesh.Close(), n.Close())
		}
		dash, err := dashboard.New(n, dashboard.WithLogger(a.log))
		if err != nil {
			return errors.Join(err, met.Close(), mesh.Close(), n.Close())
		}
		url, wait, err := a.serveAPI(ctx, f.api.addr, apiKeys, gen,
			api.WithRoute("GET /{$}", dash), api.WithKeyedRoute("GET /api/status", dash),
			api.WithKeyedRoute("GET /metrics", met))
		if err != nil {
			return errors.Join(err, dash.Close(), met.Close(), mesh.Close(), n.Close())
		}
		fmt.Fprintf(a.stderr, "imece: dashboard on %s/, metrics on %s/metrics\n", strings.TrimSuffix(url, "/v1"), strings.TrimSuffix(url, "/v1"))
		stopAPI = func() error { return errors.Join(wait(), dash.Close(), met.Close(), mesh.Close()) }
	}
	<-ctx.Done()
	fmt.Fprintln(a.stderr, "imece: leaving the network")
	return errors.Join(stopAPI(), n.Close())
}
