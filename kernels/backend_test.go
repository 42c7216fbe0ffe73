package kernels

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"

	"go.uber.org/goleak"
)

var allTypes = []DType{F32, F16, BF16, Q8_0, Q4_0, Q4_K, Q6_K}

// isaNames lists every instruction set this CPU can run, generic first.
func isaNames() []string {
	var names []string
	for _, k := range availableKernels() {
		names = append(names, k.name)
	}
	return names
}

func newTestCPU(t testing.TB, opts ...Option) Backend {
	t.Helper()
	b, err := NewCPU(append([]Option{WithBLAS("off")}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	return b
}

func randRow(r *rand.Rand, n int, scale float64) []float32 {
	x := make([]float32, n)
	for i := range x {
		x[i] = float32(r.NormFloat64() * scale)
	}
	return x
}

// randMatrix returns weights quantized to dt and their dequantized values.
func randMatrix(t testing.TB, r *rand.Rand, dt DType, rows, cols int) ([]byte, []float32) {
	t.Helper()
	src := randRow(r, rows*cols, 0.05)
	rb, err := dt.RowBytes(int64(rows * cols))
	if err != nil {
		t.Fatal(err)
	}
	b := make([]byte, rb)
	if err := Quantize(b, dt, src); err != nil {
		t.Fatal(err)
	}
	w := make([]float32, rows*cols)
	if err := Dequantize(w, dt, b); err != nil {
		t.Fatal(err)
	}
	return b, w
}

// matmulBound is how far a backend may be from the exact product of the stored
// weights and the float activations: for quantized weights the activations are
// quantized too (half a step of their block's scale per value, as in llama.cpp),
// plus float32 rounding of the accumulation.
func matmulBound(dt DType, w, x []float32) float64 {
	var bound, mag float64
	blk := 0
	switch dt {
	case Q8_0, Q4_0:
		blk = qk
	case Q4_K, Q6_K:
		blk = qkK
	}
	step := blk
	if blk == 0 {
		step = len(x)
	}
	for c0 := 0; c0 < len(x); c0 += step {
		c1 := c0 + step
		var amax float64
		for _, v := range x[c0:c1] {
			amax = max(amax, math.Abs(float64(v)))
		}
		for c := c0; c < c1; c++ {
			if blk > 0 {
				bound += math.Abs(float64(w[c])) * amax / 127 / 2
			}
			mag += math.Abs(float64(w[c]) * float64(x[c]))
		}
	}
	return bound*1.01 + 2e-5*mag + 1e-7
}

func TestMatMulMatchesReference(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 6))
	shapes := []struct{ rows, cols int }{{1, 256}, {5, 256}, {17, 512}, {67, 768}}
	for _, isa := range isaNames() {
		for _, threads := range []int{1, 3} {
			b := newTestCPU(t, WithISA(isa), WithThreads(threads))
			for _, dt := range allTypes {
				for _, sh := range shapes {
					data, w := randMatrix(t, r, dt, sh.rows, sh.cols)
					m, err := b.NewMatrix(dt, sh.rows, sh.cols, data)
					if err != nil {
						t.Fatal(err)
					}
					for _, n := range []int{1, 2, 3, 7, 33} {
						name := fmt.Sprintf("%s/t%d/%s/%dx%d/n%d", isa, threads, dt, sh.rows, sh.cols, n)
						checkMatMul(t, name, b, m, dt, w, sh.rows, sh.cols, n, r)
					}
				}
			}
		}
	}
}

func checkMatMul(t *testing.T, name string, b Backend, m Matrix, dt DType, w []float32, rows, cols, n int, r *rand.Rand) {
	t.Helper()
	x := randRow(r, n*cols, 1)
	dst := make([]float32, n*rows)
	b.MatMul(dst, x, n, m)
	for i := range n {
		xi := x[i*cols : (i+1)*cols]
		for rr := range rows {
			wr := w[rr*cols : (rr+1)*cols]
			var want float64
			for c := range cols {
				want += float64(wr[c]) * float64(xi[c])
			}
			got := float64(dst[i*rows+rr])
			if d := math.Abs(got - want); d > matmulBound(dt, wr, xi) {
				t.Fatalf("%s: dst[%d,%d] = %g, want %g (bound %g)", name, i, rr, got, want, matmulBound(dt, wr, xi))
			}
		}
	}
}

// The prefill path on a TinyLlama-sized tile, every type, every ISA.
func TestMatMulPrefill128(t *testing.T) {
	if testing.Short() {
		t.Skip("large")
	}
	r := rand.New(rand.NewPCG(7, 8))
	rows, cols, n := 96, 2048, 128
	for _, dt := range allTypes {
		data, w := randMatrix(t, r, dt, rows, cols)
		for _, isa := range isaNames() {
			b := newTestCPU(t, WithISA(isa))
			m, _ := b.NewMatrix(dt, rows, cols, data)
			checkMatMul(t, fmt.Sprintf("%s/%s/n%d", isa, dt, n), b, m, dt, w, rows, cols, n, r)
		}
	}
}

// Every ISA gives the generic kernels' answer up to float rounding: they compute the
// same integer dot products.
func TestISAsAgree(t *testing.T) {
	r := rand.New(rand.NewPCG(9, 10))
	ref := newTestCPU(t, WithISA("generic"))
	for _, isa := range isaNames()[1:] {
		b := newTestCPU(t, WithISA(isa), WithThreads(2))
		for _, dt := range allTypes {
			for _, tc := range []struct{ n, rows, cols int }{
				{1, 37, 512}, {2, 37, 512}, {3, 37, 512}, {7, 37, 512}, {128, 37, 512},
				{19, 13, 4352}, // k split into chunks of the prefill tile (and 17-block tail)
				{300, 9, 512},  // tokens split into blocks of the prefill tile
			} {
				n, rows, cols := tc.n, tc.rows, tc.cols
				data, _ := randMatrix(t, r, dt, rows, cols)
				mr, _ := ref.NewMatrix(dt, rows, cols, data)
				mb, _ := b.NewMatrix(dt, rows, cols, data)
				x := randRow(r, n*cols, 1)
				want := make([]float32, n*rows)
				got := make([]float32, n*rows)
				ref.MatMul(want, x, n, mr)
				b.MatMul(got, x, n, mb)
				for i := range want {
					if d := math.Abs(float64(got[i] - want[i])); d > 1e-4*(1+math.Abs(float64(want[i]))) {
						t.Fatalf("%s %s n=%d: element %d = %g, generic %g", isa, dt, n, i, got[i], want[i])
					}
				}
			}
		}
	}
}

func TestNewMatrixErrors(t *testing.T) {
	b := newTestCPU(t)
	for _, tc := range []struct {
		dt         DType
		rows, cols int
		bytes      int
	}{
		{Q8_0, 2, 31, 68}, {Q8_0, 2, 32, 67}, {F32, 0, 4, 0}, {DType(77), 1, 1, 1}, {Q4_K, 1, 128, 72},
	} {
		if _, err := b.NewMatrix(tc.dt, tc.rows, tc.cols, make([]byte, tc.bytes)); err == nil {
			t.Errorf("NewMatrix(%s, %d, %d, %d bytes): no error", tc.dt, tc.rows, tc.cols, tc.bytes)
		}
	}
}

func TestOptions(t *testing.T) {
	if _, err := NewCPU(WithThreads(0)); err == nil {
		t.Error("zero threads accepted")
	}
	if _, err := NewCPU(WithISA("vax")); err == nil {
		t.Error("unknown ISA accepted")
	}
	b := newTestCPU(t, WithThreads(2), WithISA("generic"))
	if b.Name() != "cpu/generic×2" {
		t.Errorf("Name() = %q", b.Name())
	}
}

func TestCloseLeavesNoGoroutines(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	b, err := NewCPU(WithThreads(4), WithBLAS("off"))
	if err != nil {
		t.Fatal(err)
	}
	data := make([]byte, 64*34)
	m, _ := b.NewMatrix(Q8_0, 64, 32, data)
	b.MatMul(make([]float32, 64), make([]float32, 32), 1, m)
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
}

// The assembly activation quantizers produce the generic ones' bytes exactly.
func TestActivationQuantizersAgree(t *testing.T) {
	r := rand.New(rand.NewPCG(13, 14))
	x := randRow(r, 32*40, 3)
	clear(x[64:96]) // an all-zero block
	x[5] = 0.5      // exact ties for the rounding
	var want q8Act
	want.resize(len(x))
	quantizeQ8Blocks(&want, 0, x)
	for _, k := range availableKernels() {
		var got q8Act
		got.resize(len(x))
		k.quantQ8(&got, 0, x)
		for i := range want.qs {
			if got.qs[i] != want.qs[i] {
				t.Fatalf("%s: q[%d] = %d, want %d", k.name, i, got.qs[i], want.qs[i])
			}
		}
		for b := range want.d {
			if got.d[b] != want.d[b] || got.sum[b] != want.sum[b] {
				t.Fatalf("%s: block %d d=%g sum=%d, want %g %d", k.name, b, got.d[b], got.sum[b], want.d[b], want.sum[b])
			}
		}
	}
}

// Several sessions share one backend: concurrent calls must neither race nor mix
// their results.
func TestConcurrentSessions(t *testing.T) {
	r := rand.New(rand.NewPCG(15, 16))
	b := newTestCPU(t, WithThreads(3))
	rows, cols := 67, 512
	type sess struct {
		m    Matrix
		x    []float32
		n    int
		want []float32
	}
	var ss []sess
	for i, dt := range allTypes {
		data, _ := randMatrix(t, r, dt, rows, cols)
		m, _ := b.NewMatrix(dt, rows, cols, data)
		n := 1 + i%3*9
		x := randRow(r, n*cols, 1)
		want := make([]float32, n*rows)
		b.MatMul(want, x, n, m)
		ss = append(ss, sess{m, x, n, want})
	}
	a := Attention{N: 1, Pos0: 200, Heads: 8, KVHeads: 2, HeadDim: 64, Scale: 0.125,
		K: randRow(r, 201*128, 1), V: randRow(r, 201*128, 1)}
	q := randRow(r, 8*64, 1)
	attWant := make([]float32, len(q))
	b.Attend(attWant, q, a)
	done := make(chan error)
	for g := range 6 {
		go func() {
			var err error
			for it := range 20 {
				s := ss[(g+it)%len(ss)]
				got := make([]float32, len(s.want))
				b.MatMul(got, s.x, s.n, s.m)
				for i := range got {
					if got[i] != s.want[i] && err == nil {
						err = fmt.Errorf("goroutine %d: %s result differs at %d", g, s.m.DType(), i)
					}
				}
				att := make([]float32, len(q))
				b.Attend(att, q, a)
				for i := range att {
					if att[i] != attWant[i] && err == nil {
						err = fmt.Errorf("goroutine %d: attention differs at %d", g, i)
					}
				}
			}
			done <- err
		}()
	}
	for range 6 {
		if err := <-done; err != nil {
			t.Error(err)
		}
	}
}

// Float rows need not be a multiple of the vector width.
func TestFloatOddWidths(t *testing.T) {
	r := rand.New(rand.NewPCG(17, 18))
	for _, isa := range isaNames() {
		b := newTestCPU(t, WithISA(isa), WithThreads(2))
		for _, dt := range []DType{F32, F16, BF16} {
			for _, cols := range []int{1, 12, 100, 257} {
				for _, n := range []int{1, 3} {
					data, w := randMatrix(t, r, dt, 23, cols)
					m, _ := b.NewMatrix(dt, 23, cols, data)
					checkMatMul(t, fmt.Sprintf("%s/%s/%d/n%d", isa, dt, cols, n), b, m, dt, w, 23, cols, n, r)
				}
			}
		}
	}
}

func TestQ8KQuantizersAgree(t *testing.T) {
	r := rand.New(rand.NewPCG(19, 20))
	x := randRow(r, qkK*6, 2)
	clear(x[qkK : 2*qkK])          // an all-zero block
	x[2*qkK+3], x[2*qkK+9] = -5, 5 // a tie: the first (negative) one wins
	x[3*qkK+1], x[3*qkK+2] = 7, -7 // a tie: the positive one wins
	var want q8KAct
	want.resize(len(x))
	quantizeQ8KBlocks(&want, 0, x)
	for _, k := range availableKernels() {
		var got q8KAct
		got.resize(len(x))
		k.quantQ8K(&got, 0, x)
		for i := range want.qs {
			if got.qs[i] != want.qs[i] {
				t.Fatalf("%s: q[%d] = %d, want %d", k.name, i, got.qs[i], want.qs[i])
			}
		}
		for i := range want.bsums {
			if got.bsums[i] != want.bsums[i] {
				t.Fatalf("%s: bsum %d = %d, want %d", k.name, i, got.bsums[i], want.bsums[i])
			}
		}
		for b := range want.d {
			if got.d[b] != want.d[b] {
				t.Fatalf("%s: d[%d] = %g, want %g", k.name, b, got.d[b], want.d[b])
			}
		}
	}
}
