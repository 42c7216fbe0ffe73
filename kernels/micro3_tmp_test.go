package kernels

import (
	"fmt"
	"math/rand/v2"
	"testing"
)

func BenchmarkDispatch(b *testing.B) {
	for _, th := range []int{1, 2} {
		b.Run(fmt.Sprint(th), func(b *testing.B) {
			be := newTestCPU(b, WithThreads(th))
			r := rand.New(rand.NewPCG(1, 1))
			m := newBenchMat(b, be, r, Q8_0, 256, 2048)
			x := randRow(r, 2048, 1)
			y := make([]float32, 256)
			for b.Loop() {
				be.MatMul(y, x, 1, m.m)
			}
		})
	}
}
