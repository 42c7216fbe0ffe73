package kernels

import (
	"math"
	"math/rand/v2"
	"testing"
)

// With OpenBLAS installed (Debian: libopenblas0), float prefill goes through
// cblas_sgemm and must agree with the built-in kernels.
// (F16 goes to BLAS only on instruction sets without their own F16 prefill tile,
// so every set is tried.)
func TestBLASMatMul(t *testing.T) {
	ref := newTestCPU(t, WithISA("generic"))
	r := rand.New(rand.NewPCG(11, 12))
	for _, isa := range isaNames() {
		b, err := NewCPU(WithBLAS(""), WithISA(isa))
		if err != nil {
			t.Fatal(err)
		}
		defer b.Close()
		if !b.(*cpu).blas.ok() {
			t.Skip("no OpenBLAS library found (apt-get install libopenblas0 to run this test)")
		}
		checkBLAS(t, b, ref, r)
	}
}

func checkBLAS(t *testing.T, b, ref Backend, r *rand.Rand) {
	for _, dt := range []DType{F32, F16} {
		rows, cols, n := 300, 512, 20
		data, _ := randMatrix(t, r, dt, rows, cols)
		mb, _ := b.NewMatrix(dt, rows, cols, data)
		mr, _ := ref.NewMatrix(dt, rows, cols, data)
		x := randRow(r, n*cols, 1)
		got, want := make([]float32, n*rows), make([]float32, n*rows)
		b.MatMul(got, x, n, mb)
		ref.MatMul(want, x, n, mr)
		for i := range got {
			if math.Abs(float64(got[i]-want[i])) > 1e-4*(1+math.Abs(float64(want[i]))) {
				t.Fatalf("%s: element %d = %g, generic %g", dt, i, got[i], want[i])
			}
		}
	}
}
