package backends

import (
	"errors"
	"log/slog"
	"math"
	"strings"
	"testing"

	"github.com/imece/imece/kernels"
	"github.com/imece/imece/kernels/opencl"
)

// openCLHere reports whether this machine has an OpenCL device, so the
// expectations below can say what each name must do here.
func openCLHere(t *testing.T) bool {
	t.Helper()
	_, err := opencl.Devices()
	if err != nil && !errors.Is(err, opencl.ErrUnavailable) {
		t.Fatal(err)
	}
	if err != nil {
		t.Logf("no OpenCL here (%v): the opencl cases expect the error", err)
	}
	return err == nil
}

// TestOpen: every name starts the backend it names, or fails saying why; the
// backend computes; the Choice explains.
func TestOpen(t *testing.T) {
	hasCL := openCLHere(t)
	quiet := WithLogger(slog.New(slog.DiscardHandler))
	tests := []struct {
		name     string
		wantKind string // "" when Open must fail
		wantErr  error
	}{
		{"cpu", "cpu", nil},
		{"auto", "", nil}, // cpu or opencl: whichever is faster here
		{"opencl", map[bool]string{true: "opencl"}[hasCL], map[bool]error{false: opencl.ErrUnavailable}[hasCL]},
		{"opencl:0", map[bool]string{true: "opencl"}[hasCL], map[bool]error{false: opencl.ErrUnavailable}[hasCL]},
		{"opencl:no such device", "", opencl.ErrUnavailable},
		{"cuda", "", ErrNotBuilt},
		{"metal", "", ErrNotBuilt},
		{"tpu", "", ErrUnknown},
		{"cpu:1", "", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			be, choice, err := Open(tt.name, quiet, WithThreads(1))
			if tt.wantKind == "" && tt.name != "auto" {
				if err == nil {
					be.Close()
					t.Fatalf("started %s (%v), want an error", be.Name(), choice)
				}
				if tt.wantErr != nil && !errors.Is(err, tt.wantErr) {
					t.Fatalf("error %v, want %v", err, tt.wantErr)
				}
				t.Logf("refused: %v", err)
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			defer func() {
				if err := be.Close(); err != nil {
					t.Errorf("close: %v", err)
				}
			}()
			if tt.wantKind != "" && choice.Kind != tt.wantKind {
				t.Errorf("kind %s, want %s", choice.Kind, tt.wantKind)
			}
			if !strings.HasPrefix(be.Name(), choice.Kind) || choice.Reason == "" || len(choice.Tried) == 0 {
				t.Errorf("backend %s, choice %+v", be.Name(), choice)
			}
			x, gain, dst := []float32{3, 4}, []float32{1, 1}, make([]float32, 2)
			be.RMSNorm(dst, x, gain, 0)
			if d := dst[0] - float32(3/math.Sqrt(12.5)); math.Abs(float64(d)) > 1e-6 {
				t.Errorf("%s: rmsnorm %v", be.Name(), dst)
			}
			t.Logf("%s → %s: %v", tt.name, be.Name(), choice)
		})
	}
}

// TestAutoExplains: auto times the CPU and every registered backend and says
// so; the backends that could not start are there with their reasons.
func TestAutoExplains(t *testing.T) {
	hasCL := openCLHere(t)
	be, choice, err := Open("auto", WithLogger(slog.New(slog.DiscardHandler)), WithThreads(1))
	if err != nil {
		t.Fatal(err)
	}
	defer be.Close()
	got := map[string]Attempt{}
	for _, a := range choice.Tried {
		got[a.Kind] = a
	}
	if a := got["cpu"]; a.Err != nil || a.MatVec <= 0 {
		t.Errorf("cpu: %+v", a)
	}
	for _, kind := range []string{"cuda", "metal"} {
		if a := got[kind]; !errors.Is(a.Err, ErrNotBuilt) {
			t.Errorf("%s: %+v, want ErrNotBuilt", kind, a)
		}
	}
	if a := got["opencl"]; hasCL != (a.Err == nil && a.MatVec > 0) {
		t.Errorf("opencl (available: %v): %+v", hasCL, a)
	}
	fastest := got[choice.Kind].MatVec
	for _, a := range choice.Tried {
		if a.Err == nil && a.MatVec < fastest {
			t.Errorf("chose %s (%v) over %s (%v)", choice.Kind, fastest, a.Kind, a.MatVec)
		}
	}
	if !strings.Contains(choice.String(), "fastest") {
		t.Errorf("reason: %s", choice)
	}
	t.Logf("%s", choice)
}

// TestProbeRejectsWrongAnswers: a backend that answers fast and wrong loses.
func TestProbeRejectsWrongAnswers(t *testing.T) {
	cpu, err := kernels.NewCPU(kernels.WithThreads(1))
	if err != nil {
		t.Fatal(err)
	}
	defer cpu.Close()
	p, err := newProbe()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.time(cpu); err != nil {
		t.Fatal(err)
	}
	if _, err := p.time(cpu); err != nil {
		t.Fatalf("the CPU disagrees with itself: %v", err)
	}
	if _, err := p.time(wrong{cpu}); err == nil {
		t.Fatal("a wrong answer was timed as a good one")
	}
}

// wrong is a backend whose products are off by one.
type wrong struct{ kernels.Backend }

func (w wrong) MatMul(dst, x []float32, n int, m kernels.Matrix) {
	w.Backend.MatMul(dst, x, n, m)
	for i := range dst {
		dst[i]++
	}
}
