package main

import (
	"crypto/ed25519"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"text/tabwriter"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/spf13/cobra"

	"github.com/imece/imece/ledger"
	"github.com/imece/imece/ledger/store"
	"github.com/imece/imece/node"
)

func (a *app) ledgerCmd() *cobra.Command {
	var data string
	cmd := &cobra.Command{
		Use:   "ledger",
		Short: "Read a node's ledger: balances, receipts, verification, export",
		Long: `Ledger reads the ledger a node keeps in its data directory: its own chain and
every other chain it has replicated. Stop the node first: the store is opened
read-only, and Badger allows one process at a time.`,
	}
	cmd.PersistentFlags().StringVar(&data, "data", "", "the node's data directory (default: the user config dir's imece/node)")
	open := func() (*store.Store, ledger.Key, error) {
		dir := data
		if dir == "" {
			var err error
			if dir, err = defaultDataDir("node"); err != nil {
				return nil, ledger.Key{}, err
			}
		}
		key, err := node.LoadIdentity(dir)
		if err != nil {
			return nil, ledger.Key{}, err
		}
		var self ledger.Key
		copy(self[:], key.Public().(ed25519.PublicKey))
		st, err := node.OpenLedgerStore(dir, store.WithReadOnly(), store.WithLogger(a.log))
		if err != nil {
			return nil, self, fmt.Errorf("open the ledger in %s (is a node running on it?): %w", dir, err)
		}
		return st, self, nil
	}
	cmd.AddCommand(
		a.ledgerBalanceCmd(open),
		a.ledgerHistoryCmd(open),
		a.ledgerVerifyCmd(&data),
		a.ledgerExportCmd(open),
		a.ledgerGenesisCmd(),
	)
	return cmd
}

type openLedger func() (*store.Store, ledger.Key, error)

// parseParty reads a peer ID (12D3KooW…) or a hex Ed25519 key.
func parseParty(s string) (ledger.Key, error) {
	var k ledger.Key
	if b, err := hex.DecodeString(s); err == nil && len(b) == len(k) {
		copy(k[:], b)
		return k, nil
	}
	id, err := peer.Decode(s)
	if err != nil {
		return k, fmt.Errorf("%q is neither a peer ID nor a hex key", s)
	}
	pub, err := id.ExtractPublicKey()
	if err != nil {
		return k, fmt.Errorf("peer %s: %w", s, err)
	}
	raw, err := pub.Raw()
	if err != nil || len(raw) != len(k) {
		return k, fmt.Errorf("peer %s has no Ed25519 key", s)
	}
	copy(k[:], raw)
	return k, nil
}

func (a *app) ledgerBalanceCmd(open openLedger) *cobra.Command {
	var of string
	cmd := &cobra.Command{
		Use:   "balance",
		Short: "Print a balance, this node's unless --of names another",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			st, self, err := open()
			if err != nil {
				return err
			}
			defer st.Close()
			who := self
			if of != "" {
				if who, err = parseParty(of); err != nil {
					return err
				}
			}
			b, err := st.Balance(who)
			if err != nil {
				return err
			}
			tw := tabwriter.NewWriter(a.stdout, 0, 0, 2, ' ', 0)
			fmt.Fprintf(tw, "party\t%s\n", hex.EncodeToString(who[:]))
			fmt.Fprintf(tw, "available\t%s\n", ledger.FormatGFT(b.Available()))
			fmt.Fprintf(tw, "allowance\t%s\n", ledger.FormatGFT(int64(b.Allowance)))
			fmt.Fprintf(tw, "earned\t%s\n", ledger.FormatGFT(int64(b.Earned)))
			fmt.Fprintf(tw, "spent\t%s\n", ledger.FormatGFT(int64(b.Spent)))
			fmt.Fprintf(tw, "pending\t%s to earn, %s to spend\n", ledger.FormatGFT(int64(b.PendingEarn)), ledger.FormatGFT(int64(b.PendingSpend)))
			if b.Frozen {
				fmt.Fprintf(tw, "frozen\tyes: the party forked its chain\n")
			}
			return tw.Flush()
		},
	}
	cmd.Flags().StringVar(&of, "of", "", "peer ID or hex key of the party (default: this node)")
	return cmd
}

func (a *app) ledgerHistoryCmd(open openLedger) *cobra.Command {
	var limit int
	cmd := &cobra.Command{
		Use:   "history",
		Short: "Print this node's receipts, newest first",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			st, self, err := open()
			if err != nil {
				return err
			}
			defer st.Close()
			blocks, err := st.History(self, limit)
			if err != nil {
				return err
			}
			tw := tabwriter.NewWriter(a.stdout, 0, 0, 2, ' ', 0)
			fmt.Fprintln(tw, "time\tblock\tkind\tcounterparty\tsession\tlayers\tpositions\ttokens\tamount")
			for _, b := range blocks {
				writeHistoryLine(tw, self, b)
			}
			return tw.Flush()
		},
	}
	cmd.Flags().IntVar(&limit, "limit", 50, "most receipts to show")
	return cmd
}

func writeHistoryLine(w io.Writer, self ledger.Key, b *ledger.Block) {
	when := time.UnixMilli(b.Time).UTC().Format("2006-01-02 15:04:05")
	owner := "self"
	if b.Owner != self {
		owner = b.Owner.String()
	}
	switch b.Kind {
	case ledger.KindEarn:
		e, err := b.Earn()
		if err != nil {
			return
		}
		sign := "+"
		if b.Owner != self {
			sign = "-" // their earn is our spend; the amount we pay is in our Spend
		}
		fmt.Fprintf(w, "%s\t%s#%d\tearn\t%s\t%x/%d\t[%d, %d)\t[%d, %d)\t%d\t%s%s\n",
			when, owner, b.Seq, e.Client, e.Session[:4], e.Window, e.First, e.Last, e.From, e.To, e.Tokens, sign, ledger.FormatGFT(int64(e.Amount)))
	case ledger.KindSpend:
		s, err := b.Spend()
		if err != nil {
			return
		}
		fmt.Fprintf(w, "%s\t%s#%d\tspend\t%s\t#%d\t\t\t\t-%s\n", when, owner, b.Seq, s.Server, s.Seq, ledger.FormatGFT(int64(s.Amount)))
	case ledger.KindHardware:
		h, err := b.Hardware()
		if err != nil {
			return
		}
		fmt.Fprintf(w, "%s\t%s#%d\thardware\ttier %d, %s\t%x\t\t\t\t\n", when, owner, b.Seq, h.Tier, milli(h.Multiplier), h.Fingerprint[:4])
	case ledger.KindAudit:
		a, err := b.Audit()
		if err != nil {
			return
		}
		verdict := "pass"
		if !a.Passed() {
			verdict = "FAIL"
		}
		fmt.Fprintf(w, "%s\t%s#%d\taudit %s\t%s\t%x/hop %d\t[%d, %d)\t@%d\t\t\n", when, owner, b.Seq, verdict, a.Subject, a.Session[:4], a.Hop, a.First, a.Last, a.Position)
	default:
		fmt.Fprintf(w, "%s\t%s#%d\t%s\n", when, owner, b.Seq, b.Kind)
	}
}

func (a *app) ledgerVerifyCmd(data *string) *cobra.Command {
	return &cobra.Command{
		Use:   "verify",
		Short: "Check every chain in the ledger; name the first bad block",
		Long: `Verify walks every chain from its first block: encoding, signatures, links,
receipts, fraud proofs, balances, and the files' checksums. It prints what it
checked, and for a damaged store the first bad block of each bad chain, and exits
with an error.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			dir := *data
			if dir == "" {
				var err error
				if dir, err = defaultDataDir("node"); err != nil {
					return err
				}
			}
			rep, err := node.VerifyLedger(cmd.Context(), dir, store.WithReadOnly(), store.WithLogger(a.log))
			if rep == nil {
				return fmt.Errorf("verify: %w", err)
			}
			fmt.Fprintf(a.stdout, "checked %d chains, %d blocks, %d fraud proofs\n", rep.Chains, rep.Blocks, rep.FraudProofs)
			if rep.Disk != nil {
				fmt.Fprintf(a.stdout, "disk: %v\n", rep.Disk)
			}
			for _, b := range rep.Bad {
				fmt.Fprintf(a.stdout, "bad: %v\n", b)
			}
			if rep.OK() && err == nil {
				fmt.Fprintln(a.stdout, "ok")
				return nil
			}
			if len(rep.Bad) > 0 {
				return fmt.Errorf("ledger damaged: first bad block: %v", rep.Bad[0])
			}
			return errors.Join(err, rep.Disk)
		},
	}
}

func (a *app) ledgerExportCmd(open openLedger) *cobra.Command {
	return &cobra.Command{
		Use:   "export",
		Short: "Write every block as JSON lines to stdout",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			st, _, err := open()
			if err != nil {
				return err
			}
			defer st.Close()
			return st.Export(cmd.Context(), a.stdout)
		},
	}
}
