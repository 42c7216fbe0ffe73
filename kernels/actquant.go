package kernels

import "math"

// roundSmall rounds half to even like nearestInt, for |x| < 2²²: adding 1.5·2²³
// leaves the rounded integer in the low mantissa bits (ggml's nearest_int), with
// no call and no branch.
func roundSmall(x float32) int32 {
	v := x + 12582912
	return int32(math.Float32bits(v)&0x7fffff) - 0x400000
}

// q8Act is a batch of activation rows quantized to 32-element blocks, the form the
// Q8_0 and Q4_0 integer dot products consume (llama.cpp's vec_dot_type for both).
// It is laid out as separate arrays rather than 34-byte blocks so the assembly
// loads aligned vectors: qs holds the int8 values, d the per-block scales (kept in
// float32: nothing forces the f16 rounding of block_q8_0 on activations) and sum
// the per-block sums of qs, which the unsigned×signed instructions need to undo
// their bias.
type q8Act struct {
	qs  []int8
	d   []float32
	sum []int32
}

// q8KAct is the Q8_K form (block_q8_K) for the K-quants: 256-element blocks, a
// float32 scale, and the sums of each 16 values (bsums) that fold the K-quant mins
// and offsets out of the inner loop.
type q8KAct struct {
	qs    []int8
	d     []float32
	bsums []int16
}

func growInt8(b []int8, n int) []int8 {
	if cap(b) < n {
		return make([]int8, n)
	}
	return b[:n]
}

func growF32(b []float32, n int) []float32 {
	if cap(b) < n {
		return make([]float32, n)
	}
	return b[:n]
}

func growI32(b []int32, n int) []int32 {
	if cap(b) < n {
		return make([]int32, n)
	}
	return b[:n]
}

func growI16(b []int16, n int) []int16 {
	if cap(b) < n {
		return make([]int16, n)
	}
	return b[:n]
}

func (a *q8Act) resize(n int) {
	a.qs = growInt8(a.qs, n)
	a.d = growF32(a.d, n/qk)
	a.sum = growI32(a.sum, n/qk)
}

func (a *q8KAct) resize(n int) {
	a.qs = growInt8(a.qs, n)
	a.d = growF32(a.d, n/qkK)
	a.bsums = growI16(a.bsums, n/16)
}

// quantizeQ8Blocks quantizes x (a multiple of 32 long) into blocks [b0, b0+len(x)/32)
// of a: d = max|x|/127 and q = x/d rounded to nearest even, as ggml's AVX
// quantize_row_q8_0 does.
func quantizeQ8Blocks(a *q8Act, b0 int, x []float32) {
	for b := 0; b < len(x)/qk; b++ {
		xs := x[b*qk : b*qk+qk]
		var amax float32
		for _, v := range xs {
			amax = max(amax, abs32(v))
		}
		d := amax / 127
		var id float32
		if amax != 0 {
			id = 127 / amax
		}
		qs := a.qs[(b0+b)*qk : (b0+b)*qk+qk]
		var s int32
		for j, v := range xs {
			q := int8(roundSmall(v * id))
			qs[j] = q
			s += int32(q)
		}
		a.d[b0+b] = d
		a.sum[b0+b] = s
	}
}

// quantizeQ8KBlocks is quantize_row_q8_K_ref for x (a multiple of 256 long) into
// blocks [b0, …) of a.
func quantizeQ8KBlocks(a *q8KAct, b0 int, x []float32) {
	for b := 0; b < len(x)/qkK; b++ {
		xs := x[b*qkK : b*qkK+qkK]
		qs := a.qs[(b0+b)*qkK : (b0+b)*qkK+qkK]
		bs := a.bsums[(b0+b)*16 : (b0+b)*16+16]
		var mx, amax float32
		for _, v := range xs {
			if ax := abs32(v); ax > amax {
				amax, mx = ax, v
			}
		}
		if amax == 0 {
			clear(qs)
			clear(bs)
			a.d[b0+b] = 0
			continue
		}
		iscale := -127 / mx
		for j, v := range xs {
			qs[j] = int8(min(127, roundSmall(iscale*v)))
		}
		for j := range 16 {
			var s int16
			for _, q := range qs[16*j : 16*j+16] {
				s += int16(q)
			}
			bs[j] = s
		}
		a.d[b0+b] = 1 / iscale
	}
}
