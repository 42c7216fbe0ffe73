package main

import (
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/imece/imece/ledger"
	"github.com/imece/imece/ledger/store"
	"github.com/imece/imece/pipeline"
	"github.com/imece/imece/testnet"
)

// run executes the real command tree in process and returns stdout and stderr.
func run(t *testing.T, stdin string, args ...string) (string, string, error) {
	t.Helper()
	var out, errb bytes.Buffer
	root := newRoot(&out, &errb)
	root.SetIn(strings.NewReader(stdin))
	root.SetArgs(args)
	err := root.Execute()
	return out.String(), errb.String(), err
}

// referenceText extracts the reference greedy continuation of stories260K from the
// README that ships beside the model (copied verbatim into testdata).
func referenceText(t *testing.T) string {
	b, err := os.ReadFile("testdata/stories260K-reference.md")
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile("(?s)## Reference greedy continuation.*?```\n(.*?)\n```").FindSubmatch(b)
	if m == nil {
		t.Fatal("no reference block in the README")
	}
	return string(m[1])
}

// TestGenerateReference is the acceptance test of the engine: the embedded model,
// greedy, reproduces the independent C implementation's text character for
// character. That text is 124 tokens long (llama2.c's 128 steps less the prompt's
// four), so 124 tokens give all of it and 100 tokens a prefix of it.
func TestGenerateReference(t *testing.T) {
	ref := referenceText(t)
	const prompt = "Once upon a time"
	if !strings.HasPrefix(ref, prompt) {
		t.Fatalf("reference does not start with the prompt: %q", ref)
	}
	want := strings.TrimPrefix(ref, prompt)
	for _, tc := range []struct {
		tokens string
		full   bool
	}{{"124", true}, {"100", false}} {
		out, _, err := run(t, "", "generate", "--prompt", prompt, "--max-tokens", tc.tokens, "--temperature", "0")
		if err != nil {
			t.Fatal(err)
		}
		got := strings.TrimSuffix(out, "\n")
		if tc.full && got != want {
			t.Errorf("--max-tokens %s:\n got %q\nwant %q", tc.tokens, got, want)
		}
		if !tc.full && (!strings.HasPrefix(want, got) || len(got) < len(want)*3/4) {
			t.Errorf("--max-tokens %s: %q is not a long prefix of the reference", tc.tokens, got)
		}
	}
}

func TestGenerateSeeded(t *testing.T) {
	args := []string{"generate", "--max-tokens", "40", "--temperature", "1", "--seed", "7"}
	a, _, err := run(t, "", args...)
	if err != nil {
		t.Fatal(err)
	}
	b, _, _ := run(t, "", args...)
	if a != b {
		t.Fatalf("same seed, different text:\n%q\n%q", a, b)
	}
	if len(strings.Fields(a)) < 5 {
		t.Fatalf("sampled text too short: %q", a)
	}
}

func TestTokenize(t *testing.T) {
	tests := []struct {
		in   string
		args []string
		want string
	}{
		{"Once upon a time", nil, "403 407 261 378\n"},
		{"Once upon a time", []string{"--bos"}, "1 403 407 261 378\n"},
		{"", nil, "\n"},
	}
	for _, tt := range tests {
		out, _, err := run(t, tt.in, append([]string{"tokenize"}, tt.args...)...)
		if err != nil {
			t.Fatal(err)
		}
		if out != tt.want {
			t.Errorf("tokenize %q %v = %q, want %q", tt.in, tt.args, out, tt.want)
		}
	}
}

func TestBadFlags(t *testing.T) {
	tests := [][]string{
		{"generate", "--max-tokens", "0"},
		{"generate", "--temperature", "-1"},
		{"generate", "--top-p", "2"},
		{"generate", "--max-tokens", "lots"},
		{"generate", "--model", "/nonexistent/model.gguf"},
		{"generate", "stray-argument"},
		{"tokenize", "--model", "/nonexistent"},
		{"generate", "--backend", "tpu"},
		{"no-such-command"},
	}
	for _, args := range tests {
		if _, _, err := run(t, "", args...); err == nil {
			t.Errorf("imece %v: no error", args)
		}
	}
}

// TestNodeTrustFlags: the audit and canary flags are checked before the node
// starts, each error naming its flag.
func TestNodeTrustFlags(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--audit-rate", "2"}, "--audit-rate 2: want 0 to 1"},
		{[]string{"--canary-every", "1m"}, "--canary-every needs --model"},
		{[]string{"--canary-every", "1m", "--model", "x.gguf", "--audit-rate", "0"}, "non-zero --audit-rate"},
		{[]string{"--canary-every", "-1m"}, "must not be negative"},
	} {
		args := append([]string{"node", "--data", t.TempDir()}, tc.args...)
		if _, _, err := run(t, "", args...); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("imece %v: err = %v, want %q", args, err, tc.want)
		}
	}
}

func TestGenerateRejectsMalformedModel(t *testing.T) {
	path := t.TempDir() + "/broken.gguf"
	b, _ := os.ReadFile("../../assets/stories260K.gguf")
	if err := os.WriteFile(path, b[:len(b)/2], 0o600); err != nil {
		t.Fatal(err)
	}
	_, _, err := run(t, "", "generate", "--model", path)
	if err == nil || !strings.Contains(err.Error(), "past the end") {
		t.Fatalf("truncated model: err = %v, want one naming the tensor past the end", err)
	}
}

func TestModelInspect(t *testing.T) {
	out, _, err := run(t, "", "model", "inspect", "../../assets/stories260K.gguf", "--layer-cids")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"architecture  llama", "parameters    292,800", "layers        5",
		"heads         8 query, 4 key/value, 8 dimensions each", "vocabulary    512",
		"cid           bafkrei", "layer 4", "blk.4.ffn_down.weight     172×64  f32   44,032",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("inspect output lacks %q:\n%s", want, out)
		}
	}
}

// TestModelSynth writes a model with the CLI, checks it is deterministic for a seed,
// and that generate runs on it.
func TestModelSynth(t *testing.T) {
	dir := t.TempDir()
	args := func(out string, seed string) []string {
		return []string{"model", "synth", "--dim", "64", "--layers", "2", "--heads", "4", "--kv-heads", "2",
			"--ffn", "128", "--vocab", "300", "--dtype", "q8_0", "--seed", seed, "--out", out}
	}
	for _, p := range []struct{ out, seed string }{{"a.gguf", "3"}, {"b.gguf", "3"}, {"c.gguf", "4"}} {
		if _, _, err := run(t, "", args(dir+"/"+p.out, p.seed)...); err != nil {
			t.Fatal(err)
		}
	}
	a, _ := os.ReadFile(dir + "/a.gguf")
	b, _ := os.ReadFile(dir + "/b.gguf")
	c, _ := os.ReadFile(dir + "/c.gguf")
	if !bytes.Equal(a, b) || bytes.Equal(a, c) {
		t.Fatal("synth is not a function of its flags and seed")
	}
	out, _, err := run(t, "", "model", "inspect", dir+"/a.gguf")
	if err != nil || !strings.Contains(out, "q8_0 ×") {
		t.Fatalf("inspect synthesized model: %v\n%s", err, out)
	}
	if _, _, err := run(t, "", "generate", "--model", dir+"/a.gguf", "--max-tokens", "5", "--prompt", "hi"); err != nil {
		t.Fatal(err)
	}
	if _, _, err := run(t, "", "model", "synth", "--dim", "60", "--layers", "1", "--heads", "4", "--ffn", "128",
		"--vocab", "300", "--dtype", "q8_0", "--out", dir+"/bad.gguf"); err == nil {
		t.Error("q8_0 with a width that is not a whole number of blocks accepted")
	}
	if _, err := os.Stat(dir + "/bad.gguf"); err == nil {
		t.Error("a failed synth left a file behind")
	}
}

// TestLedgerCommands runs a local network that keeps its data, then reads a
// volunteer's ledger with the CLI; a copy of the store with one byte of a block
// changed makes verify name that block.
func TestLedgerCommands(t *testing.T) {
	dir := t.TempDir()
	ctx := context.Background()
	n, err := testnet.Start(ctx, testnet.WithNodes(2), testnet.WithDir(dir))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := n.Generate(ctx, pipeline.Request{Prompt: "Once upon a time", MaxTokens: 20}); err != nil {
		t.Fatal(err)
	}
	// Let replication settle before stopping.
	time.Sleep(500 * time.Millisecond)
	if err := n.Close(); err != nil {
		t.Fatal(err)
	}
	vol := filepath.Join(dir, "node1")
	out, _, err := run(t, "", "ledger", "balance", "--data", vol)
	if err != nil || !regexp.MustCompile(`earned\s+[1-9][0-9]*\.[0-9]{3} GFT|earned\s+0\.[0-9]*[1-9][0-9]* GFT`).MatchString(out) {
		t.Fatalf("balance: %v\n%s", err, out)
	}
	out, _, err = run(t, "", "ledger", "history", "--data", vol)
	if err != nil || !strings.Contains(out, "earn") {
		t.Fatalf("history: %v\n%s", err, out)
	}
	out, _, err = run(t, "", "ledger", "export", "--data", vol)
	if err != nil {
		t.Fatal(err)
	}
	var lines []store.ExportedBlock
	for _, l := range strings.Split(strings.TrimSpace(out), "\n") {
		var b store.ExportedBlock
		if err := json.Unmarshal([]byte(l), &b); err != nil {
			t.Fatalf("export line %q: %v", l, err)
		}
		lines = append(lines, b)
	}
	if len(lines) < 2 {
		t.Fatalf("export has %d blocks", len(lines))
	}
	if out, _, err = run(t, "", "ledger", "verify", "--data", vol); err != nil || !strings.Contains(out, "ok") {
		t.Fatalf("verify of a sound ledger: %v\n%s", err, out)
	}

	// Damage a copy: change one byte inside a stored block (found by its
	// signature, which is unique) and verify the copy.
	bad := filepath.Join(t.TempDir(), "node1")
	if err := os.CopyFS(bad, os.DirFS(vol)); err != nil {
		t.Fatal(err)
	}
	victim := lines[len(lines)-1]
	sig, _ := hex.DecodeString(victim.Sig)
	damaged := false
	filepath.WalkDir(filepath.Join(bad, "ledger"), func(p string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() || damaged {
			return err
		}
		b, _ := os.ReadFile(p)
		if i := bytes.Index(b, sig); i >= 0 {
			b[i-20] ^= 0xff // inside the block's body, just before its signature
			damaged = os.WriteFile(p, b, 0o600) == nil
		}
		return nil
	})
	if !damaged {
		t.Fatal("no stored copy of the block found to damage")
	}
	out, _, err = run(t, "", "ledger", "verify", "--data", bad)
	if err == nil {
		t.Fatalf("verify of a damaged ledger passed:\n%s", out)
	}
	if !strings.Contains(err.Error(), fmt.Sprintf("block %d of %s", victim.Seq, victim.Owner)) {
		t.Fatalf("verify does not name the damaged block %d of %s: %v\n%s", victim.Seq, victim.Owner, err, out)
	}
}

// TestGenesisFile: the printed default network file parses back; a network of
// another file works, and its nodes name it.
func TestGenesisFile(t *testing.T) {
	out, _, err := run(t, "", "ledger", "genesis")
	if err != nil {
		t.Fatal(err)
	}
	g, err := ledger.ParseGenesis([]byte(out))
	if err != nil || g.Network != "imece-local" {
		t.Fatalf("printed genesis: %v %+v", err, g)
	}
	path := filepath.Join(t.TempDir(), "net.json")
	os.WriteFile(path, []byte(strings.Replace(out, `"imece-local"`, `"my-lab"`, 1)), 0o600)
	text, errOut, err := run(t, "", "testnet", "--nodes", "2", "--genesis", path, "--temperature", "0", "--max-tokens", "10")
	if err != nil || !strings.HasPrefix(text, ", there was a little girl") || !strings.Contains(errOut, "earned") {
		t.Fatalf("testnet on another network: %v\n%s\n%s", err, text, errOut)
	}
	os.WriteFile(path, []byte(`{"network": "x"}`), 0o600)
	if _, _, err := run(t, "", "testnet", "--genesis", path); err == nil || !strings.Contains(err.Error(), "genesis") {
		t.Fatalf("an invalid network file: %v", err)
	}
}
