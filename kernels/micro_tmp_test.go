package kernels

import (
	"runtime"
	"testing"
)

func BenchmarkDecodeThreads(b *testing.B) {
	for _, th := range []int{1, 2} {
		b.Run(string(rune('0'+th)), func(b *testing.B) {
			be := newTestCPU(b, WithThreads(th))
			ms := tinyLlamaWeights(b, be, Q8_0)
			runMatVecs(b, be, ms)
			b.ReportMetric(MeasureBandwidth(th, 0)/1e9, "triad-now")
			runtime.GC()
		})
	}
}
