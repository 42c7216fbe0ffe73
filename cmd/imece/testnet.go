package main

import (
	"context"
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/imece/imece/ledger"
	"github.com/imece/imece/node"
	"github.com/imece/imece/node/grid"
	"github.com/imece/imece/pipeline"
	"github.com/imece/imece/testnet"
)

type testnetFlags struct {
	samplingFlags
	nodes   int
	model   string
	threads int
	backend string
	genesis string
	zones   bool
}

func (a *app) testnetCmd() *cobra.Command {
	var f testnetFlags
	cmd := &cobra.Command{
		Use:   "testnet",
		Short: "Start a local cooperative in this process and generate text through it",
		Long: `Testnet starts a bootstrap node and --nodes volunteers in this process, on loopback
TCP, each a real node with its own identity, DHT and stage server, splits the
model's layers among them, and then generates through them as a light client
would: the client finds the volunteers through the DHT, fetches the tokenizer from
them, and the activations flow node to node. The text goes to stdout, the network
to stderr. Without --model it uses the embedded stories260K.`,
		Example: `  imece testnet
  imece testnet --nodes 5 --prompt "Once upon a time" --temperature 0`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return a.testnet(cmd.Context(), f) },
	}
	cmd.Flags().IntVar(&f.nodes, "nodes", 3, "number of volunteers")
	cmd.Flags().StringVar(&f.model, "model", "", "GGUF file or HuggingFace directory (default: embedded stories260K)")
	cmd.Flags().IntVar(&f.threads, "threads", 0, "CPU threads shared by the nodes (default: all cores)")
	backendFlag(cmd, &f.backend)
	cmd.Flags().BoolVar(&f.zones, "grid-zones", true, "give the volunteers the simulated grid zones in turn (sim-east, sim-central, sim-west), so P_grid varies over the day")
	genesisFlag(cmd, &f.genesis)
	f.samplingFlags.register(cmd)
	return cmd
}

func (a *app) testnet(ctx context.Context, f testnetFlags) error {
	if err := f.validate(); err != nil {
		return err
	}
	if f.nodes < 1 || f.nodes > 256 {
		return fmt.Errorf("--nodes must be between 1 and 256, got %d", f.nodes)
	}
	g, err := loadGenesis(f.genesis)
	if err != nil {
		return err
	}
	opts := []testnet.Option{testnet.WithNodes(f.nodes), testnet.WithLogger(a.log), testnet.WithThreads(f.threads), testnet.WithGenesis(g)}
	var perVol []func(i int) []node.Option
	if f.zones {
		zones := grid.SimZones()
		perVol = append(perVol, func(i int) []node.Option {
			src, err := grid.NewSimulated(zones[i%len(zones)], uint64(i))
			if err != nil {
				return nil // the preset zones are valid
			}
			return []node.Option{node.WithGrid(src)}
		})
	}
	if f.model != "" || f.backend != "cpu" {
		m, err := openModel(f.model, a.log)
		if err != nil {
			return err
		}
		defer m.Close()
		opts = append(opts, testnet.WithModel(m))
		if f.backend != "cpu" {
			// The volunteers share one backend, as they share testnet's
			// CPU one otherwise; each serves its part of testnet's split
			// (the later WithServe replaces testnet's).
			be, err := a.newBackend(f.threads, f.backend)
			if err != nil {
				return err
			}
			defer be.Close()
			split := testnet.Split(m.Config.Layers, f.nodes)
			perVol = append(perVol, func(i int) []node.Option {
				return []node.Option{node.WithServe(m, be, node.Layers{First: split[i][0], Last: split[i][1]})}
			})
		}
	}
	if len(perVol) > 0 {
		opts = append(opts, testnet.WithVolunteerOptions(func(i int) []node.Option {
			var o []node.Option
			for _, f := range perVol {
				o = append(o, f(i)...)
			}
			return o
		}))
	}
	start := time.Now()
	n, err := testnet.Start(ctx, opts...)
	if err != nil {
		return err
	}
	defer n.Close()
	fmt.Fprintf(a.stderr, "testnet: model %s (%s), %d layers\n", n.ModelID, n.Model.Path, n.Model.Config.Layers)
	fmt.Fprintf(a.stderr, "testnet: bootstrap %s\n", n.Bootstrap.Addrs()[0])
	for i, v := range n.Volunteers {
		_, r, _ := v.Serving()
		green := ""
		if g := v.Grid(); g != nil {
			green = fmt.Sprintf("  P_grid %.3f", float64(g.Last().PGrid)/1000)
		}
		fmt.Fprintf(a.stderr, "testnet: node%d serves layers %v%s  %s\n", i+1, r, green, v.ID())
	}
	fmt.Fprintf(a.stderr, "testnet: %d nodes up in %v; generating through them\n", len(n.Volunteers)+1, time.Since(start).Round(time.Millisecond))
	var route []pipeline.Hop
	res, err := n.Generate(ctx, a.request(f.samplingFlags), pipeline.WithRouteObserver(func(r []pipeline.Hop) { route = r }))
	if err := a.finish(res, err); err != nil {
		return err
	}
	if len(route) > 0 {
		fmt.Fprintf(a.stderr, "testnet: route %s\n", pipeline.FormatRoute(route))
	}
	fmt.Fprintf(a.stderr, "testnet: %d tokens, first after %v, then %s tokens/s\n",
		len(res.Tokens), res.Prefill.Round(time.Millisecond), perSecond(len(res.Tokens)-1, res.Decode))
	for _, c := range n.Clients() {
		if b, err := c.Ledger().Store().Balance(c.Ledger().Self()); err == nil {
			fmt.Fprintf(a.stderr, "testnet: client spent %s (%s left)\n", ledger.FormatGFT(int64(b.Spent)), ledger.FormatGFT(b.Available()))
		}
	}
	for i, v := range n.Volunteers {
		if b, err := v.Ledger().Store().Balance(v.Ledger().Self()); err == nil {
			fmt.Fprintf(a.stderr, "testnet: node%d earned %s\n", i+1, ledger.FormatGFT(int64(b.Earned)))
		}
	}
	return nil
}
