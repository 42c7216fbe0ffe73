package store

import (
	"bytes"
	"context"
	"encoding/json"
	"strings"
	"testing"

	"github.com/imece/imece/ledger"
)

// TestTrustBlocks: hardware claims and audits are stored, listed in the
// histories of their owner and subject, exported with their bodies decoded,
// verified, and a failed audit's cut of the subject's credits is written to
// the subject's stored balance and survives a reopen.
func TestTrustBlocks(t *testing.T) {
	dir := t.TempDir()
	s := openTest(t, dir, WithCosts(knows("m")))
	srv, cli, other, third := newParty("server"), newParty("client"), newParty("other"), newParty("third")
	hw := &ledger.Hardware{Tier: 3, Multiplier: 1000, Fingerprint: [32]byte{1}, MatmulMFLOPS: 15_180_000,
		BandwidthMBps: 288_000, LayerMicros: 800, Backend: "cpu"}
	claim, err := s.Append(srv.priv, ledger.KindHardware, hw.Encode())
	if err != nil {
		t.Fatal(err)
	}
	srv.head, srv.now = claim.Head(), claim.Time
	cli.now, other.now, third.now = srv.now-10_000, srv.now-10_000, srv.now-10_000
	// Three clients, so the server mints (independent evidence): each
	// receipt's spend, and the surplus beyond it of all but one (the epoch's
	// largest client's is held back).
	e1, s1 := receipt(t, srv, cli, "m", 0)
	e2, s2 := receipt(t, srv, other, "m", 0)
	e3, s3 := receipt(t, srv, third, "m", 0)
	addAll(t, s, []*ledger.Block{e1, s1, e2, s2, e3, s3})
	before, _ := s.Balance(srv.key)
	paid, _ := s.Balance(cli.key)
	e, _ := e1.Earn()
	if spend := paid.Spent; spend >= e.Amount || before.Earned != 3*spend+2*(e.Amount-spend) {
		t.Fatalf("server %+v before the audit, receipts of %d for a spend of %d: want 3 spends and 2 surpluses", before, e.Amount, spend)
	}

	// The client (which paid the server: it has standing) fails the server,
	// timed before the second receipt, which arrived first: that one is cut.
	au := &ledger.Audit{Subject: srv.key, Session: [16]byte{9}, Model: testModel("m"), First: 0, Last: 2,
		Position: 3, Check: ledger.CheckRecompute, Verdict: ledger.VerdictFail}
	audit, err := ledger.NewAudit(cli.priv, cli.head, au, cli.next())
	if err != nil {
		t.Fatal(err)
	}
	addAll(t, s, []*ledger.Block{audit})

	h, err := s.History(srv.key, 10)
	if err != nil {
		t.Fatal(err)
	}
	kinds := map[ledger.Kind]int{}
	for _, b := range h {
		kinds[b.Kind]++
	}
	if kinds[ledger.KindHardware] != 1 || kinds[ledger.KindAudit] != 1 || kinds[ledger.KindEarn] != 3 {
		t.Fatalf("server history kinds %v", kinds)
	}
	var buf bytes.Buffer
	if err := s.Export(context.Background(), &buf); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{`"kind":"hardware"`, `"backend":"cpu"`, `"kind":"audit"`, `"verdict":"fail"`} {
		if !strings.Contains(buf.String(), want) {
			t.Errorf("export lacks %s", want)
		}
	}
	for line := range strings.Lines(buf.String()) {
		var e ExportedBlock
		if err := json.Unmarshal([]byte(line), &e); err != nil {
			t.Fatal(err)
		}
		if m, ok := e.Body.(map[string]any); ok && m["raw"] != nil {
			t.Errorf("%s block exported raw", e.Kind)
		}
	}
	r, err := s.Verify(context.Background())
	if err != nil || !r.OK() {
		t.Fatalf("Verify: %+v, %v", r, err)
	}
	s.Close()
	s = openTest(t, dir, WithCosts(knows("m")))
	after, _ := s.Balance(srv.key)
	if after.Earned >= before.Earned {
		t.Fatalf("a failed audit did not cut the server's stored credits: %+v, before %+v", after, before)
	}
}
