// Command imece is the one binary every participant of the imece compute
// cooperative runs: volunteer node, client, local testnet, ledger tool and
// benchmark. This package holds only flags and wiring; the work is done in the
// packages it imports.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := newRoot(os.Stdout, os.Stderr).ExecuteContext(ctx)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "imece:", err)
		if errors.Is(err, context.Canceled) {
			os.Exit(130)
		}
		os.Exit(1)
	}
}

// app carries what every subcommand shares: where output and logs go.
type app struct {
	stdout, stderr io.Writer
	logLevel       string
	log            *slog.Logger
}

// newRoot builds the command tree. It takes its writers as arguments so tests can
// run the real commands in process.
func newRoot(stdout, stderr io.Writer) *cobra.Command {
	a := &app{stdout: stdout, stderr: stderr}
	root := &cobra.Command{
		Use:   "imece",
		Short: "A compute cooperative with no centre: share idle GPU/CPU time, spend it on inference",
		Long: `imece runs transformer inference across volunteers' machines. Every participant
runs this one binary; there is no coordinator.`,
		SilenceUsage:  true,
		SilenceErrors: true,
		PersistentPreRunE: func(cmd *cobra.Command, args []string) error {
			var lvl slog.Level
			if err := lvl.UnmarshalText([]byte(a.logLevel)); err != nil {
				return fmt.Errorf("--log-level: %w", err)
			}
			a.log = slog.New(slog.NewTextHandler(a.stderr, &slog.HandlerOptions{Level: lvl}))
			return nil
		},
	}
	root.SetOut(stdout)
	root.SetErr(stderr)
	root.PersistentFlags().StringVar(&a.logLevel, "log-level", "warn", "log level: debug, info, warn or error (logs go to stderr)")
	root.AddCommand(
		a.generateCmd(),
		a.tokenizeCmd(),
		a.modelCmd(),
		a.nodeCmd(),
		a.testnetCmd(),
		a.ledgerCmd(),
		a.benchCmd(),
		a.serveCmd(),
	)
	return root
}
