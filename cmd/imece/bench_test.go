package main

import (
	"encoding/hex"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/imece/imece/node/hardware"
)

func TestBenchQuick(t *testing.T) {
	dir := t.TempDir()
	out, errOut, err := run(t, "", "bench", "--quick", "--threads", "2", "--data", dir)
	if err != nil {
		t.Fatalf("%v\n%s", err, errOut)
	}
	for _, want := range []string{"matmul (f16, prefill)", "memory bandwidth (triad)", "layer latency", "performance index",
		"tier ", "multiplier ", "fingerprint ", "quick run", "stored in " + dir + " (the first claim there)"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	// Progress goes to stderr as one line per step when it is not a terminal.
	for _, step := range []string{"1/5 matmul", "2/5 bandwidth", "3/5 synthesize", "4/5 prefill", "5/5 decode"} {
		if !strings.Contains(errOut, "bench: "+step+"\n") {
			t.Errorf("stderr lacks progress %q:\n%s", step, errOut)
		}
	}
	c, err := hardware.Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	if !c.Quick || !strings.Contains(out, hex.EncodeToString(c.Fingerprint[:])) {
		t.Errorf("stored claim %+v does not match the output:\n%s", c, out)
	}
	if err := hardware.DefaultScale().Check(c); err != nil {
		t.Error(err)
	}
	m := regexp.MustCompile(`multiplier\s+(\d+\.\d{3})`).FindStringSubmatch(out)
	if m == nil || m[1] != milli(c.Multiplier) {
		t.Errorf("printed multiplier %v, stored %s", m, milli(c.Multiplier))
	}

	// A second run compares with the stored claim.
	out, _, err = run(t, "", "bench", "--quick", "--threads", "2", "--data", dir)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out, "stored in "+dir+" (") || strings.Contains(out, "the first claim") || strings.Contains(out, "other hardware") {
		t.Errorf("second run's comparison:\n%s", out)
	}
}

func TestBenchRejectsFlags(t *testing.T) {
	for _, args := range [][]string{
		{"bench", "--threads", "-1"},
		{"bench", "--quick", "--genesis", "/nonexistent/network.json"},
		{"bench", "extra"},
	} {
		if _, _, err := run(t, "", args...); err == nil {
			t.Errorf("%v: no error", args)
		}
	}
}

func TestLoadAverage(t *testing.T) {
	path := filepath.Join(t.TempDir(), "loadavg")
	os.WriteFile(path, []byte("1.52 0.98 0.60 3/412 28575\n"), 0o644)
	if v, ok := loadAverage(path); !ok || v != 1.52 {
		t.Errorf("load average %v, %v; want 1.52", v, ok)
	}
	if _, ok := loadAverage(filepath.Join(t.TempDir(), "absent")); ok {
		t.Error("a load average without a file")
	}
}

func TestMilli(t *testing.T) {
	for m, want := range map[uint32]string{50: "0.050", 81: "0.081", 1000: "1.000", 1414: "1.414", 8000: "8.000"} {
		if got := milli(m); got != want {
			t.Errorf("milli(%d) = %s, want %s", m, got, want)
		}
	}
}
