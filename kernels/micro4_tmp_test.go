package kernels

import (
	"fmt"
	"sync"
	"testing"
)

func BenchmarkCPUs(b *testing.B) {
	for _, th := range []int{1, 2} {
		b.Run(fmt.Sprint(th), func(b *testing.B) {
			for b.Loop() {
				var wg sync.WaitGroup
				for t := 0; t < th; t++ {
					wg.Add(1)
					go func() {
						defer wg.Done()
						x := uint64(1)
						for i := 0; i < 50_000_000/th*th; i++ {
							x = x*6364136223846793005 + 1
						}
						_ = x
					}()
				}
				wg.Wait()
			}
		})
	}
}
func BenchmarkQuantQ8(b *testing.B) {
	var a q8Act
	a.resize(2048)
	x := make([]float32, 2048)
	for i := range x {
		x[i] = float32(i%17) - 8
	}
	for b.Loop() {
		quantizeQ8Blocks(&a, 0, x)
	}
}
