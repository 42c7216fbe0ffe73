package kernels

// gemmAct is a batch of Q8-quantized activations laid out for the AVX-512 prefill
// tile: per 32-value block k and token pair p, 64 bytes of values (two tokens side by
// side), and in the same positions of sa and corr the two tokens' scales and bias
// corrections, each repeated over the eight lanes of its half. Pairs are padded to a
// multiple of four (zeros), so a tile never reads past the end.
//
// For the K-quants (Q8_K activations) corr is unused and asum holds, per 256-value
// block and token pair, sums of each token's values times its scale: eight sums of
// 32 for Q4_K, whose mins meet them once per block, and sixteen sums of 16 times 32
// for Q6_K, whose −32 offset does.
type gemmAct struct {
	pairs int // padded
	acts  []int8
	sa    []float32
	corr  []int32
	asum  []float32
}

const gemmPairsPerTile = 4

// asumFloats is the size of asum's slot for one block and token pair.
func asumFloats(dt DType) int {
	if dt == Q6_K {
		return 32
	}
	return 16
}

// resizeK sizes the arrays for n tokens of Q8_K activations meeting dt weights.
func (g *gemmAct) resizeK(n, cols int, dt DType) {
	g.resize(n, cols)
	g.asum = growF32(g.asum, cols/qkK*g.pairs*asumFloats(dt))
}

// expandK is expand for Q8_K activations meeting dt weights.
func (g *gemmAct) expandK(a *q8KAct, t, cols int, dt DType, zero bool) {
	nb, nsb := cols/qk, cols/qkK
	p, h := t/2, t%2
	for k := range nb {
		slot := k*g.pairs + p
		dst := g.acts[slot*64+h*32 : slot*64+h*32+32]
		sa := g.sa[slot*16+h*8 : slot*16+h*8+8]
		if zero {
			clear(dst)
			clear(sa)
			continue
		}
		copy(dst, a.qs[t*cols+k*qk:t*cols+k*qk+qk])
		d := a.d[t*nsb+k/8]
		for i := range 8 {
			sa[i] = d
		}
	}
	per := asumFloats(dt)
	for b := range nsb {
		slot := (b*g.pairs + p) * per
		var bs []int16
		if !zero {
			bs = a.bsums[(t*nsb+b)*16 : (t*nsb+b)*16+16]
		}
		if dt == Q6_K {
			// Groups 0–7 of both tokens, then groups 8–15.
			lo := g.asum[slot+h*8 : slot+h*8+8]
			hi := g.asum[slot+16+h*8 : slot+16+h*8+8]
			if zero {
				clear(lo)
				clear(hi)
				continue
			}
			d := 32 * a.d[t*nsb+b]
			for j := range 8 {
				lo[j] = float32(bs[j]) * d
				hi[j] = float32(bs[8+j]) * d
			}
			continue
		}
		as := g.asum[slot+h*8 : slot+h*8+8]
		if zero {
			clear(as)
			continue
		}
		d := a.d[t*nsb+b]
		for j := range 8 {
			as[j] = float32(int32(bs[2*j])+int32(bs[2*j+1])) * d
		}
	}
}

func (g *gemmAct) resize(n, cols int) {
	p := (n + 1) / 2
	p = (p + gemmPairsPerTile - 1) / gemmPairsPerTile * gemmPairsPerTile
	g.pairs = p
	nb := cols / qk
	g.acts = growInt8(g.acts, nb*p*64)
	g.sa = growF32(g.sa, nb*p*16)
	g.corr = growI32(g.corr, nb*p*16)
}

// expand writes token t (or zeros, for a padding token) into its half of every
// block's pair slot. bias is what the tile adds to the weights to make them
// unsigned: 128 for Q8_0, 8 for Q4_0's stored nibbles.
func (g *gemmAct) expand(a *q8Act, t, cols int, bias int32, zero bool) {
	nb := cols / qk
	p, h := t/2, t%2
	for k := range nb {
		slot := k*g.pairs + p
		dst := g.acts[slot*64+h*32 : slot*64+h*32+32]
		sa := g.sa[slot*16+h*8 : slot*16+h*8+8]
		corr := g.corr[slot*16+h*8 : slot*16+h*8+8]
		if zero {
			clear(dst)
			clear(sa)
			clear(corr)
			continue
		}
		b := t*nb + k
		copy(dst, a.qs[b*qk:b*qk+qk])
		d, c := a.d[b], -bias/8*a.sum[b]
		for i := range 8 {
			sa[i] = d
			corr[i] = c
		}
	}
}
