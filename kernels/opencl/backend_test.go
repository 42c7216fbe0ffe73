package opencl_test

import (
	"context"
	"errors"
	"log/slog"
	"math"
	"math/rand/v2"
	"strings"
	"testing"
	"unsafe"

	"github.com/imece/imece/assets"
	"github.com/imece/imece/kernels"
	"github.com/imece/imece/kernels/opencl"
	"github.com/imece/imece/pipeline"
	"github.com/imece/imece/pipeline/llama"
	"github.com/imece/imece/pipeline/model"
)

// reference is stories260K's greedy continuation of "Once upon a time"
// (../shared/models/README.md).
const reference = `, there was a little girl named Lily. She loved to play outside in the park. One day, she saw a big, red ball. She wanted to play with it, but it was too high.
Lily's mom said, "Lily, let's go to the park." Lily was sad and didn't know what to do. She said, "I want to play with your ball, but I can't find`

// open is the OpenCL backend, or a skip naming why there is none (no library,
// no device: install Debian's pocl-opencl-icd to run these on the CPU).
func open(t *testing.T) (*opencl.Backend, kernels.Backend) {
	t.Helper()
	cpu, err := kernels.NewCPU()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cpu.Close() })
	b, err := opencl.New(opencl.WithCPU(cpu), opencl.WithLogger(slog.New(slog.DiscardHandler)))
	if errors.Is(err, opencl.ErrUnavailable) {
		t.Skipf("no OpenCL here (%v): install an OpenCL driver, or pocl-opencl-icd for the CPU", err)
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	return b, cpu
}

func randoms(r *rand.Rand, n int) []float32 {
	v := make([]float32, n)
	for i := range v {
		v[i] = float32(r.NormFloat64())
	}
	return v
}

func bytesOf(v []float32) []byte { return unsafe.Slice((*byte)(unsafe.Pointer(&v[0])), len(v)*4) }

// closeTo: within rel of the larger magnitude, or abs near zero. Device and
// CPU sum in different orders (fma chains against SIMD lanes).
func closeTo(t *testing.T, what string, got, want []float32, rel, abs float64) {
	t.Helper()
	worst := 0.0
	for i := range want {
		d := math.Abs(float64(got[i] - want[i]))
		tol := max(abs, rel*math.Max(math.Abs(float64(got[i])), math.Abs(float64(want[i]))))
		if d > tol || math.IsNaN(float64(got[i])) {
			t.Fatalf("%s [%d]: %v, CPU %v", what, i, got[i], want[i])
		}
		worst = max(worst, d)
	}
	t.Logf("%s: worst absolute difference %.3g", what, worst)
}

// TestKernelsMatchCPU: each kernel on the device against the CPU backend,
// awkward sizes included, within float32 summation-order tolerances.
func TestKernelsMatchCPU(t *testing.T) {
	b, cpu := open(t)
	t.Logf("device: %s", b.Name())
	r := rand.New(rand.NewPCG(1, 2))
	for _, s := range []struct{ rows, cols, n int }{{1, 32, 1}, {7, 33, 1}, {64, 288, 5}, {513, 96, 3}} {
		w := randoms(r, s.rows*s.cols)
		x := randoms(r, s.n*s.cols)
		dm, err := b.NewMatrix(kernels.F32, s.rows, s.cols, bytesOf(w))
		if err != nil {
			t.Fatal(err)
		}
		cm, err := cpu.NewMatrix(kernels.F32, s.rows, s.cols, bytesOf(w))
		if err != nil {
			t.Fatal(err)
		}
		got, want := make([]float32, s.n*s.rows), make([]float32, s.n*s.rows)
		b.MatMul(got, x, s.n, dm)
		cpu.MatMul(want, x, s.n, cm)
		closeTo(t, "matmul", got, want, 1e-4, 1e-4)
	}
	x, gain := randoms(r, 3*77), randoms(r, 77)
	got, want := make([]float32, len(x)), make([]float32, len(x))
	b.RMSNorm(got, x, gain, 1e-5)
	cpu.RMSNorm(want, x, gain, 1e-5)
	closeTo(t, "rmsnorm", got, want, 1e-5, 1e-6)

	gate, up := randoms(r, 1001), randoms(r, 1001)
	got, want = make([]float32, 1001), make([]float32, 1001)
	b.SwiGLU(got, gate, up)
	cpu.SwiGLU(want, gate, up)
	closeTo(t, "swiglu", got, want, 1e-5, 1e-6)

	dst, bias := randoms(r, 4*50), randoms(r, 50)
	got, want = append([]float32(nil), dst...), append([]float32(nil), dst...)
	b.Add(got, bias)
	cpu.Add(want, bias)
	closeTo(t, "add (broadcast)", got, want, 0, 0)
	if b.Err() != nil || b.Launches() != 7 {
		t.Fatalf("device %v after %d launches, want 7", b.Err(), b.Launches())
	}
}

// TestStoriesOnOpenCL: the embedded model, greedy, on the OpenCL backend,
// gives the reference text exactly.
func TestStoriesOnOpenCL(t *testing.T) {
	b, _ := open(t)
	m, err := model.FromGGUF(assets.DefaultModel)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	st, err := llama.NewStage(m, b)
	if err != nil {
		t.Fatal(err)
	}
	tok, err := pipeline.TokenizerFor(m)
	if err != nil {
		t.Fatal(err)
	}
	var text strings.Builder
	open := func(ctx context.Context, maxLen int) (pipeline.Runner, error) { return pipeline.NewLocal(st, maxLen) }
	if _, err := pipeline.Generate(context.Background(), open, tok, pipeline.Request{Prompt: "Once upon a time", MaxTokens: 124,
		OnText: func(s string) error { text.WriteString(s); return nil }}); err != nil {
		t.Fatal(err)
	}
	if b.Err() != nil || b.Launches() < 124*5*7 {
		t.Fatalf("device: %v, %d kernel launches (each token: 7 products and norms per layer on the device)", b.Err(), b.Launches())
	}
	t.Logf("%d kernel launches", b.Launches())
	if text.String() != reference {
		t.Fatalf("on %s:\n%q\nwant\n%q", b.Name(), text.String(), reference)
	}
}
