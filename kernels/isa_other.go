//go:build !amd64

package kernels

// availableKernels lists the instruction sets usable here, best last. Without
// assembly for this architecture the portable kernels are the only ones.
func availableKernels() []*kernelSet {
	return []*kernelSet{genericKernels()}
}

func triad(a, b, c []float32, s float32) { triadGo(a, b, c, s) }
