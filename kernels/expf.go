package kernels

import "math"

// expf is a float32 exponential within 2 ulp of the exact one, several times faster
// than math.Exp: softmax and SiLU call it for every score and every FFN unit.
// Range reduction x = k·ln2 + r with |r| ≤ ln2/2, a degree-6 polynomial for e^r,
// then 2^k through the exponent bits (in two steps near the subnormal range).
func expf(x float32) float32 {
	switch {
	case x > 88.72284:
		return float32(math.Inf(1))
	case x < -103.97208:
		return 0
	case x != x:
		return x
	}
	const (
		log2e = 1.44269504088896341
		ln2hi = 0.693359375
		ln2lo = -2.12194440e-4
	)
	k := float32(math.Floor(float64(x*log2e + 0.5)))
	r := x - k*ln2hi - k*ln2lo
	p := float32(1.9875691500e-4)
	p = p*r + 1.3981999507e-3
	p = p*r + 8.3334519073e-3
	p = p*r + 4.1665795894e-2
	p = p*r + 1.6666665459e-1
	p = p*r + 5.0000001201e-1
	y := p*r*r + r + 1
	ki := int32(k)
	if ki < -125 {
		y *= math.Float32frombits(uint32(ki+127+64) << 23)
		return y * math.Float32frombits(uint32(127-64)<<23)
	}
	if ki > 127 {
		return y * 2 * math.Float32frombits(uint32(ki-1+127)<<23)
	}
	return y * math.Float32frombits(uint32(ki+127)<<23)
}

// silu is x·sigmoid(x), the gate of SwiGLU, computed as x/(1+e^−x) like ggml.
func silu(x float32) float32 { return x / (1 + expf(-x)) }
