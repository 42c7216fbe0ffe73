package opencl_test

import (
	"errors"
	"log/slog"
	"strings"
	"testing"

	"github.com/imece/imece/kernels"
	"github.com/imece/imece/kernels/kernelstest"
	"github.com/imece/imece/kernels/opencl"
)

// open is the OpenCL backend on the preferred device, or a skip saying why
// there is none (install an OpenCL driver, or Debian's pocl-opencl-icd to run
// these on the CPU).
func open(t testing.TB, opts ...opencl.Option) *opencl.Backend {
	t.Helper()
	cpu, err := kernels.NewCPU(kernels.WithThreads(2))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cpu.Close() })
	opts = append([]opencl.Option{opencl.WithCPU(cpu), opencl.WithLogger(slog.New(slog.DiscardHandler))}, opts...)
	b, err := opencl.New(opts...)
	if errors.Is(err, opencl.ErrUnavailable) {
		t.Skipf("no OpenCL here (%v): install a GPU's OpenCL driver, or pocl-opencl-icd to test on the CPU", err)
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	return b
}

// TestConformance: the OpenCL backend passes the suite every backend passes,
// with each of its decode kernels (a work-group per row for GPUs, a work item
// per row for CPU devices), and it was the device that computed (no silent
// fallback to the CPU).
func TestConformance(t *testing.T) {
	for _, tt := range []struct {
		name string
		opts []opencl.Option
	}{{"default", nil}, {"group-matvec", []opencl.Option{opencl.WithGroupMatVec()}}} {
		t.Run(tt.name, func(t *testing.T) {
			b := open(t, tt.opts...)
			t.Logf("device %v", b.Device())
			kernelstest.Conformance(t, b)
			if err := b.Err(); err != nil {
				t.Fatalf("the device failed and the CPU took over: %v", err)
			}
			// stories260K alone is 124 tokens × 5 layers × 13 kernels.
			if n := b.Launches(); n < 124*5*13 {
				t.Fatalf("%d kernel launches: the work did not run on the device", n)
			}
		})
	}
}

// TestDevices: the listing ranks devices and the options pick among them.
func TestDevices(t *testing.T) {
	open(t) // skips without OpenCL
	all, err := opencl.Devices()
	if err != nil {
		t.Fatal(err)
	}
	for i, d := range all {
		t.Logf("%v", d)
		if d.Index != i || d.Name == "" || d.MaxWorkGroup < 1 {
			t.Errorf("device %d: %+v", i, d)
		}
		if i > 0 && all[i-1].Type != "gpu" && d.Type == "gpu" {
			t.Errorf("a GPU (%v) ranks after a non-GPU (%v)", d, all[i-1])
		}
	}
	name := all[0].Name
	b := open(t, opencl.WithDeviceName(strings.ToUpper(name[:min(len(name), 6)])))
	if b.Device().Name != name {
		t.Errorf("by name: %v, want %s", b.Device(), name)
	}
	for _, opts := range [][]opencl.Option{
		{opencl.WithDevice(len(all))},
		{opencl.WithDeviceName("no such device anywhere")},
		{opencl.WithLibrary("/nonexistent/libOpenCL.so")},
	} {
		if _, err := opencl.New(opts...); !errors.Is(err, opencl.ErrUnavailable) {
			t.Errorf("%v: %v, want ErrUnavailable", opts, err)
		}
	}
	if _, err := opencl.New(opencl.WithDevice(-1)); err == nil || errors.Is(err, opencl.ErrUnavailable) {
		t.Errorf("a negative device index: %v", err)
	}
}

// TestClose: closing releases everything once; a second Close is harmless.
func TestClose(t *testing.T) {
	b := open(t)
	w := []float32{1, 2, 3, 4}
	m, err := b.NewMatrix(kernels.F32, 2, 2, kernelstest.Bytes(w))
	if err != nil {
		t.Fatal(err)
	}
	dst := make([]float32, 2)
	b.MatMul(dst, []float32{1, 1}, 1, m)
	if dst[0] != 3 || dst[1] != 7 {
		t.Fatalf("W·(1,1) = %v, want [3 7]", dst)
	}
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
}
