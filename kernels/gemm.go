package kernels

// gemmAct is a batch of Q8-quantized activations laid out for the AVX-512 prefill
// tile: per 32-value block k and token pair p, 64 bytes of values (two tokens side by
// side), and in the same positions of sa and corr the two tokens' scales and bias
// corrections, each repeated over the eight lanes of its half. Pairs are padded to a
// multiple of four (zeros), so a tile never reads past the end.
type gemmAct struct {
	pairs int // padded
	acts  []int8
	sa    []float32
	corr  []int32
}

const gemmPairsPerTile = 4

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
