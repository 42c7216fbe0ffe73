package kernels_test

import (
	"fmt"

	"github.com/imece/imece/kernels"
)

// A weight matrix straight from its stored bytes, one decode product and one
// prefill product. Names of backends vary with the CPU, so this prints results
// only.
func ExampleNewCPU() {
	be, err := kernels.NewCPU(kernels.WithThreads(2))
	if err != nil {
		panic(err)
	}
	defer be.Close()

	// A 2×32 matrix quantized to Q8_0 (in a model file this is memory-mapped).
	w := make([]float32, 2*32)
	for c := range 32 {
		w[c] = 1       // row 0 sums its input
		w[32+c] = -0.5 // row 1 takes minus half of it
	}
	data := make([]byte, 2*34)
	if err := kernels.Quantize(data, kernels.Q8_0, w); err != nil {
		panic(err)
	}
	m, err := be.NewMatrix(kernels.Q8_0, 2, 32, data)
	if err != nil {
		panic(err)
	}

	x := make([]float32, 3*32) // three tokens
	for i := range x {
		x[i] = float32(i/32 + 1) // token t is all t+1
	}
	y := make([]float32, 3*2)
	be.MatMul(y[:2], x[:32], 1, m) // decode: one token
	fmt.Printf("%.1f\n", y[:2])
	be.MatMul(y, x, 3, m) // prefill: all tokens in one call
	fmt.Printf("%.1f\n", y)
	// Q8_0 stores the block scale as a half, so results are close to, not exactly, 32.

	// Output:
	// [32.0 -16.0]
	// [32.0 -16.0 64.0 -32.0 96.0 -48.0]
}
