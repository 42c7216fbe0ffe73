package hardware

import (
	"bufio"
	"crypto/sha256"
	"fmt"
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"

	"github.com/klauspost/cpuid/v2"
)

// Device describes the hardware a node serves with: what its fingerprint is a
// hash of. It holds only what stays the same from one start to the next on
// unchanged hardware (no clock frequencies, temperatures, free memory, host
// names or kernel versions), and everything whose change changes what the
// benchmark would measure: another CPU, more or fewer cores, more memory,
// another backend or thread count, another GPU.
type Device struct {
	// CPU is the processor's brand string.
	CPU    string
	Vendor string
	// Family, Model and Stepping identify the CPU's microarchitecture and
	// revision.
	Family, Model, Stepping int
	// Features are the vector and matrix extensions (SSE, AVX, AMX, FMA, F16C;
	// ASIMD, SVE) the CPU and the OS support, sorted: those change what the
	// kernels can do. The rest of the CPUID flags stay out, because some change
	// without new hardware (microcode updates disable TSX, hypervisors expose
	// or hide architectural MSRs).
	Features []string
	// PhysicalCores and ThreadsPerCore are the CPU's topology as CPUID reports it
	// (0 and 1 when it cannot tell, as in some virtual machines).
	PhysicalCores, ThreadsPerCore int
	// CPUs is the number of logical CPUs the process may run on.
	CPUs int
	// MemoryGiB is the installed memory rounded to whole GiB, because the
	// kernel's count moves by a few MiB between kernel versions; 0 when unknown.
	MemoryGiB int
	// Backend is the name of the backend the node serves with, which includes
	// its instruction set and thread count: a node benchmarked with 32 threads
	// must not keep that claim when it serves with 4.
	Backend string
	// Accelerators are the GPUs (or other devices) the backend computes on.
	Accelerators []Accelerator
}

// Accelerator is a compute device besides the CPU.
type Accelerator struct {
	// Name is the device's name as its driver reports it.
	Name string
	// MemoryBytes is its memory, as the driver reports the total (not the free
	// amount, which changes).
	MemoryBytes uint64
}

// Describe describes this machine serving with the backend named backend on
// accelerators.
func Describe(backend string, accelerators ...Accelerator) Device {
	c := cpuid.CPU
	var features []string
	for _, f := range c.FeatureSet() {
		if computeFeature(f) {
			features = append(features, f)
		}
	}
	slices.Sort(features)
	return Device{
		CPU:            strings.TrimSpace(c.BrandName),
		Vendor:         c.VendorString,
		Family:         c.Family,
		Model:          c.Model,
		Stepping:       c.Stepping,
		Features:       features,
		PhysicalCores:  c.PhysicalCores,
		ThreadsPerCore: c.ThreadsPerCore,
		CPUs:           runtime.NumCPU(),
		MemoryGiB:      memoryGiB("/proc/meminfo"),
		Backend:        backend,
		Accelerators:   append([]Accelerator(nil), accelerators...),
	}
}

// computeFeature reports whether the CPUID feature named f is a vector or
// matrix extension.
func computeFeature(f string) bool {
	for _, p := range [...]string{"SSE", "SSSE3", "AVX", "AMX", "FMA", "F16C", "ASIMD", "SVE", "FPHP"} {
		if strings.HasPrefix(f, p) {
			return true
		}
	}
	return false
}

// memoryGiB reads MemTotal from a Linux meminfo file and rounds it to GiB; it
// returns 0 where there is no such file.
func memoryGiB(path string) int {
	f, err := os.Open(path)
	if err != nil {
		return 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), "MemTotal:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
			if err != nil || kb <= 0 {
				return 0
			}
			return int((kb + 1<<19) >> 20)
		}
	}
	return 0
}

// deviceTag versions the canonical form: a change of the form changes every
// fingerprint, so it must be deliberate.
const deviceTag = "imece/device/1"

// Canonical is the text the fingerprint hashes: one "key=value" line per
// property in a fixed order, features comma-separated. Newlines inside values
// become spaces so no value can forge another line.
func (d Device) Canonical() string {
	clean := func(s string) string { return strings.NewReplacer("\n", " ", "\r", " ").Replace(s) }
	var b strings.Builder
	line := func(k string, v any) { fmt.Fprintf(&b, "%s=%v\n", k, v) }
	b.WriteString(deviceTag + "\n")
	line("cpu", clean(d.CPU))
	line("vendor", clean(d.Vendor))
	line("family", d.Family)
	line("model", d.Model)
	line("stepping", d.Stepping)
	line("features", clean(strings.Join(d.Features, ",")))
	line("physical-cores", d.PhysicalCores)
	line("threads-per-core", d.ThreadsPerCore)
	line("cpus", d.CPUs)
	line("memory-gib", d.MemoryGiB)
	line("backend", clean(d.Backend))
	for _, a := range d.Accelerators {
		line("accelerator", fmt.Sprintf("%s;%d", clean(a.Name), a.MemoryBytes))
	}
	return b.String()
}

// Fingerprint is the SHA-256 of the canonical description: equal on one machine
// from run to run, different when its hardware or the backend changes.
func (d Device) Fingerprint() [32]byte { return sha256.Sum256([]byte(d.Canonical())) }

// String is a one-line description for people.
func (d Device) String() string {
	var b strings.Builder
	name := d.CPU
	if name == "" {
		name = "unknown CPU"
	}
	fmt.Fprintf(&b, "%s (%s family %d model %d stepping %d), %d CPUs", name, d.Vendor, d.Family, d.Model, d.Stepping, d.CPUs)
	switch {
	case d.PhysicalCores > 0 && d.ThreadsPerCore > 1:
		fmt.Fprintf(&b, " (%d cores × %d threads)", d.PhysicalCores, d.ThreadsPerCore)
	case d.PhysicalCores > 0:
		fmt.Fprintf(&b, " (%d cores)", d.PhysicalCores)
	}
	if d.MemoryGiB > 0 {
		fmt.Fprintf(&b, ", %d GiB", d.MemoryGiB)
	}
	for _, a := range d.Accelerators {
		fmt.Fprintf(&b, ", %s (%d GiB)", a.Name, (a.MemoryBytes+1<<29)>>30)
	}
	fmt.Fprintf(&b, ", %d vector extensions, backend %s", len(d.Features), d.Backend)
	return b.String()
}
