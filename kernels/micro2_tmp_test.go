package kernels

import (
	"math/rand/v2"
	"testing"
)

func BenchmarkStreamQ8Kernel(b *testing.B) {
	r := rand.New(rand.NewPCG(1, 1))
	rows := 256 * 1024
	w := randWeights(r, Q8_0, rows, 2048)
	var a q8Act
	a.resize(2048)
	quantizeQ8Blocks(&a, 0, randRow(r, 2048, 1))
	out := make([]float32, rows)
	b.SetBytes(int64(len(w)))
	for b.Loop() {
		for rr := 0; rr < rows; rr += 4 {
			q8_0DotX4VNNI(&w[rr*2176], 2176, 64, &a.qs[0], &a.d[0], &a.sum[0], &out[rr], 1)
		}
	}
	b.ReportMetric(MeasureBandwidth(1, 0)/1e9, "triad1")
}
func BenchmarkStreamDot(b *testing.B) {
	n := 128 << 20
	x := make([]float32, n)
	y := make([]float32, n)
	for i := range x {
		x[i] = 1
		y[i] = 1
	}
	b.SetBytes(int64(8 * n))
	for b.Loop() {
		dotF32AVX2(&x[0], &y[0], n)
	}
}
func BenchmarkStreamDot1(b *testing.B) {
	n := 256 << 20
	x := make([]float32, n)
	for i := range x {
		x[i] = 1
	}
	b.SetBytes(int64(4 * n))
	for b.Loop() {
		dotF32AVX2(&x[0], &x[0], n)
	}
}
