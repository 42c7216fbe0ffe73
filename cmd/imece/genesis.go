package main

import (
	"fmt"
	"os"

	"github.com/spf13/cobra"

	"github.com/imece/imece/ledger"
)

// loadGenesis reads the network file given by --genesis, or returns the default
// local network's.
func loadGenesis(path string) (*ledger.Genesis, error) {
	if path == "" {
		return ledger.DefaultGenesis(), nil
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("--genesis: %w", err)
	}
	g, err := ledger.ParseGenesis(b)
	if err != nil {
		return nil, fmt.Errorf("--genesis %s: %w", path, err)
	}
	return g, nil
}

func genesisFlag(cmd *cobra.Command, path *string) {
	cmd.Flags().StringVar(path, "genesis", "", "network file (default: the local network; see imece ledger genesis)")
}

func (a *app) ledgerGenesisCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "genesis",
		Short: "Print the default network file, to start a network of your own from",
		Long: `Genesis prints the network file of the default local network as JSON: the
network's name, the eight hardware tiers, the precision factors, the grid weights,
the starter allowance and the settlement interval. Edit it (a new network name at
least), give the same file to every node with --genesis, and they form a network
that refuses nodes of any other.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			g := ledger.DefaultGenesis()
			_, err := a.stdout.Write(g.JSON())
			if err == nil {
				h := g.Hash()
				fmt.Fprintf(a.stderr, "genesis hash %x\n", h)
			}
			return err
		},
	}
}
