package ledger

import (
	"bytes"
	"encoding/hex"
	"errors"
	"flag"
	"os"
	"strings"
	"testing"
)

var rewrite = flag.Bool("rewrite", false, "rewrite testdata/imece-local.genesis.json from DefaultGenesis")

// TestDefaultGenesisGolden pins the local network's file and hash: every node of
// a testnet must derive the same, and a change here is a change of network.
func TestDefaultGenesisGolden(t *testing.T) {
	const path = "testdata/imece-local.genesis.json"
	g := DefaultGenesis()
	if err := g.Validate(); err != nil {
		t.Fatal(err)
	}
	if *rewrite {
		if err := os.WriteFile(path, g.JSON(), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(g.JSON(), want) {
		t.Fatalf("DefaultGenesis().JSON() differs from %s (run with -rewrite if intended)", path)
	}
	parsed, err := ParseGenesis(want)
	if err != nil {
		t.Fatal(err)
	}
	if parsed.Hash() != g.Hash() {
		t.Fatal("the parsed file hashes differently")
	}
	// Independently computed from the documented layout.
	const hash = "dd7952fef773940f207d7772b873aec76acafd8936ec594243bceee824759ab6"
	if h := g.Hash(); hex.EncodeToString(h[:]) != hash {
		got := hex.EncodeToString(h[:])
		t.Errorf("hash %s, want %s", got, hash)
	}
	if g.MaxMultiplier() != 8000 {
		t.Errorf("top multiplier %d", g.MaxMultiplier())
	}
}

// TestGenesisHashIgnoresSpelling: the hash is of the parameters, not of the file.
func TestGenesisHashIgnoresSpelling(t *testing.T) {
	g := DefaultGenesis()
	compact := strings.ReplaceAll(string(g.JSON()), "\n  ", "\n\t\t")
	// Another key order.
	compact = strings.Replace(compact, `"network": "imece-local",`, "", 1)
	compact = strings.Replace(compact, `"settlement_tokens": 64`, `"settlement_tokens": 64, "network": "imece-local"`, 1)
	p, err := ParseGenesis([]byte(compact))
	if err != nil {
		t.Fatal(err)
	}
	if p.Hash() != g.Hash() {
		t.Error("reformatting the file changed the hash")
	}
	other := DefaultGenesis()
	other.Network = "imece-main"
	if other.Hash() == g.Hash() {
		t.Error("another network id gives the same hash")
	}
	other = DefaultGenesis()
	other.Tiers[3].Examples = "RTX 3060"
	if other.Hash() == g.Hash() {
		t.Error("another tier description gives the same hash")
	}
}

func TestParseGenesisRejects(t *testing.T) {
	good := string(DefaultGenesis().JSON())
	edit := func(f func(g *Genesis)) string {
		g := DefaultGenesis()
		f(g)
		return string(g.JSON())
	}
	for name, text := range map[string]string{
		"not JSON":             "network",
		"unknown field":        strings.Replace(good, `"network"`, `"colour": "red", "network"`, 1),
		"data after":           good + "{}",
		"negative allowance":   strings.Replace(good, `"starter_allowance_milli_gft": 10000000`, `"starter_allowance_milli_gft": -1`, 1),
		"fractional tokens":    strings.Replace(good, `"settlement_tokens": 64`, `"settlement_tokens": 6.5`, 1),
		"factor too wide":      strings.Replace(good, `"f32": 1000`, `"f32": 70000`, 1),
		"too large":            good + strings.Repeat(" ", MaxGenesisSize),
		"empty network":        edit(func(g *Genesis) { g.Network = "" }),
		"network with a space": edit(func(g *Genesis) { g.Network = "imece local" }),
		"seven tiers":          edit(func(g *Genesis) { g.Tiers = g.Tiers[:7] }),
		"unnamed tier":         edit(func(g *Genesis) { g.Tiers[2].Name = "" }),
		"tier multiplier 0":    edit(func(g *Genesis) { g.Tiers[0].Multiplier = 0 }),
		"tiers not increasing": edit(func(g *Genesis) { g.Tiers[4].Multiplier = 1000 }),
		"precision above 1":    edit(func(g *Genesis) { g.Precision.F32 = 1001 }),
		"precision 0":          edit(func(g *Genesis) { g.Precision.Bits4 = 0 }),
		"precision rising":     edit(func(g *Genesis) { g.Precision.Bits8 = 600 }),
		"grid weights":         edit(func(g *Genesis) { g.Grid.Load = 0 }),
		"settlement 0":         edit(func(g *Genesis) { g.SettlementTokens = 0 }),
	} {
		if _, err := ParseGenesis([]byte(text)); !errors.Is(err, ErrGenesis) {
			t.Errorf("%s: %v, want ErrGenesis", name, err)
		}
	}
}
