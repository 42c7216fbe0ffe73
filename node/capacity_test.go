package node

import (
	"runtime"
	"testing"
)

// TestAvailableMemory: the figure --layers auto sizes a volunteer by comes from
// the system where it has one (Linux's /proc/meminfo, Windows'
// GlobalMemoryStatusEx) and is plausible.
func TestAvailableMemory(t *testing.T) {
	const plausible = 1 << 50 // a petabyte: more means a misread structure
	n := availableMemory()
	if n <= 0 || n > plausible {
		t.Fatalf("availableMemory() = %d", n)
	}
	switch runtime.GOOS {
	case "windows":
		if w := osAvailableMemory(); w <= 0 || w > plausible {
			t.Fatalf("GlobalMemoryStatusEx gave %d", w)
		}
	case "linux":
		if osAvailableMemory() != 0 {
			t.Fatal("osAvailableMemory answers on Linux, where /proc/meminfo is the source")
		}
	}
	t.Logf("%s: %.1f GiB available", runtime.GOOS, float64(n)/(1<<30))
}
