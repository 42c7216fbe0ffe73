package backends

import (
	"log/slog"
	"strings"
	"testing"
)

// TestOpen: every name starts a backend that computes, or is refused; the
// reason names what ran.
func TestOpen(t *testing.T) {
	quiet := WithLogger(slog.New(slog.DiscardHandler))
	for _, name := range Names() {
		be, why, err := Open(name, quiet, WithThreads(1))
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if why == "" {
			t.Errorf("%s: no reason given", name)
		}
		if (name == "cuda" || name == "metal") && !strings.HasPrefix(be.Name(), "cpu") {
			t.Errorf("%s ran on %s", name, be.Name())
		}
		x, gain, dst := []float32{3, 4}, []float32{1, 1}, make([]float32, 2)
		be.RMSNorm(dst, x, gain, 0)
		if d := dst[0] - 3/3.5355339; d > 1e-5 || d < -1e-5 {
			t.Errorf("%s (%s): rmsnorm %v", name, be.Name(), dst)
		}
		t.Logf("%-6s → %s (%s)", name, be.Name(), why)
		if err := be.Close(); err != nil {
			t.Errorf("%s: close: %v", name, err)
		}
	}
	if _, _, err := Open("tpu"); err == nil {
		t.Fatal("an unknown backend was accepted")
	}
}
