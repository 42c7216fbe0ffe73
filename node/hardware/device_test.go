package hardware

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestFingerprintStable(t *testing.T) {
	a, b := Describe("cpu/avx2×4"), Describe("cpu/avx2×4")
	if a.Fingerprint() != b.Fingerprint() {
		t.Fatalf("two descriptions of this machine differ:\n%s\n%s", a.Canonical(), b.Canonical())
	}
	if a.CPUs < 1 || a.Backend != "cpu/avx2×4" {
		t.Errorf("description %+v", a)
	}
	base := Device{
		CPU: "Example CPU", Vendor: "GenuineIntel", Family: 6, Model: 167, Stepping: 1,
		Features: []string{"AVX2", "AVX512F", "FMA3"}, PhysicalCores: 8, ThreadsPerCore: 2,
		CPUs: 16, MemoryGiB: 32, Backend: "cpu/avx512-vnni×16",
	}
	// The same inputs give the same hash, whatever else happens in between.
	if base.Fingerprint() != base.Fingerprint() {
		t.Fatal("same device, different fingerprints")
	}
	for _, tc := range []struct {
		name   string
		change func(d *Device)
	}{
		{"CPU count", func(d *Device) { d.CPUs = 8 }},
		{"core count", func(d *Device) { d.PhysicalCores = 4 }},
		{"CPU model", func(d *Device) { d.Model = 143 }},
		{"CPU name", func(d *Device) { d.CPU = "Other CPU" }},
		{"vector extensions", func(d *Device) { d.Features = d.Features[:2] }},
		{"memory", func(d *Device) { d.MemoryGiB = 64 }},
		{"backend threads", func(d *Device) { d.Backend = "cpu/avx512-vnni×8" }},
		{"a GPU added", func(d *Device) { d.Accelerators = []Accelerator{{"NVIDIA GeForce RTX 3060", 12 << 30}} }},
	} {
		d := base
		d.Features = append([]string(nil), base.Features...)
		tc.change(&d)
		if d.Fingerprint() == base.Fingerprint() {
			t.Errorf("changed %s, same fingerprint", tc.name)
		}
	}
	// A value cannot forge another line of the canonical form.
	forged := base
	forged.CPU = "Example CPU\nbackend=cpu/generic×1"
	if strings.Count(forged.Canonical(), "\nbackend=") != 1 || strings.Count(forged.Canonical(), "\n") != strings.Count(base.Canonical(), "\n") {
		t.Errorf("a newline in a value forged a line:\n%s", forged.Canonical())
	}
}

// TestDescribeLeavesOutVolatileFlags: only vector and matrix extensions enter
// the description; flags that microcode or hypervisors toggle do not.
func TestDescribeLeavesOutVolatileFlags(t *testing.T) {
	for _, f := range Describe("x").Features {
		if !computeFeature(f) {
			t.Errorf("feature %s is not a vector extension", f)
		}
	}
	for _, f := range []string{"RTM", "HLE", "HYPERVISOR", "IA32_ARCH_CAP", "RDRAND"} {
		if computeFeature(f) {
			t.Errorf("%s counts as a compute feature", f)
		}
	}
	for _, f := range []string{"AVX2", "AVX512VNNI", "AMXINT8", "FMA3", "F16C", "SSE42", "ASIMDDP", "SVE"} {
		if !computeFeature(f) {
			t.Errorf("%s does not count as a compute feature", f)
		}
	}
}

func TestMemoryGiB(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct {
		meminfo string
		want    int
	}{
		{"MemTotal:       24576000 kB\nMemFree: 1 kB\n", 23}, // 23.44 GiB
		{"MemFree: 1 kB\nMemTotal:       16303104 kB\n", 16}, // 15.55 GiB, rounds up
		{"MemTotal: lots\n", 0},
		{"", 0},
	} {
		path := filepath.Join(dir, "meminfo")
		if err := os.WriteFile(path, []byte(tc.meminfo), 0o644); err != nil {
			t.Fatal(err)
		}
		if got := memoryGiB(path); got != tc.want {
			t.Errorf("%q: %d GiB, want %d", tc.meminfo, got, tc.want)
		}
	}
	if got := memoryGiB(filepath.Join(dir, "absent")); got != 0 {
		t.Errorf("no meminfo: %d GiB, want 0", got)
	}
}
