package kernels

import (
	"encoding/binary"
	"math"
)

// The portable dot products: the reference every assembly path is tested against,
// and the whole implementation on architectures without one. Each takes one weight
// row in its stored form and one activation row.

func dotF32Go(a, b []float32) float32 {
	var s0, s1, s2, s3 float32
	i := 0
	for ; i+4 <= len(a); i += 4 {
		s0 += a[i] * b[i]
		s1 += a[i+1] * b[i+1]
		s2 += a[i+2] * b[i+2]
		s3 += a[i+3] * b[i+3]
	}
	for ; i < len(a); i++ {
		s0 += a[i] * b[i]
	}
	return (s0 + s1) + (s2 + s3)
}

// axpyGo computes y += a·x.
func axpyGo(y []float32, a float32, x []float32) {
	x = x[:len(y)]
	for i := range y {
		y[i] += a * x[i]
	}
}

func dotF16Go(w []byte, x []float32) float32 {
	var s0, s1 float32
	i := 0
	for ; i+2 <= len(x); i += 2 {
		s0 += F16ToF32(binary.LittleEndian.Uint16(w[2*i:])) * x[i]
		s1 += F16ToF32(binary.LittleEndian.Uint16(w[2*i+2:])) * x[i+1]
	}
	for ; i < len(x); i++ {
		s0 += F16ToF32(binary.LittleEndian.Uint16(w[2*i:])) * x[i]
	}
	return s0 + s1
}

func dotBF16Go(w []byte, x []float32) float32 {
	var s0, s1 float32
	i := 0
	for ; i+2 <= len(x); i += 2 {
		s0 += math.Float32frombits(uint32(binary.LittleEndian.Uint16(w[2*i:]))<<16) * x[i]
		s1 += math.Float32frombits(uint32(binary.LittleEndian.Uint16(w[2*i+2:]))<<16) * x[i+1]
	}
	for ; i < len(x); i++ {
		s0 += math.Float32frombits(uint32(binary.LittleEndian.Uint16(w[2*i:]))<<16) * x[i]
	}
	return s0 + s1
}

// dotQ8_0Go is ggml_vec_dot_q8_0_q8_0: per block, an exact integer dot product
// scaled by both block scales.
func dotQ8_0Go(w []byte, a *q8Act, b0, nb int) float32 {
	var sum float32
	for b := 0; b < nb; b++ {
		blk := w[b*q8_0Len : b*q8_0Len+q8_0Len]
		qa := a.qs[(b0+b)*qk : (b0+b)*qk+qk]
		var s int32
		for j := range qk {
			s += int32(int8(blk[2+j])) * int32(qa[j])
		}
		sum += halfAt(blk, 0) * a.d[b0+b] * float32(s)
	}
	return sum
}

// dotQ4_0Go is ggml_vec_dot_q4_0_q8_0.
func dotQ4_0Go(w []byte, a *q8Act, b0, nb int) float32 {
	var sum float32
	for b := 0; b < nb; b++ {
		blk := w[b*q4_0Len : b*q4_0Len+q4_0Len]
		qa := a.qs[(b0+b)*qk : (b0+b)*qk+qk]
		var s int32
		for j := range 16 {
			s += (int32(blk[2+j]&0xf) - 8) * int32(qa[j])
			s += (int32(blk[2+j]>>4) - 8) * int32(qa[j+16])
		}
		sum += halfAt(blk, 0) * a.d[b0+b] * float32(s)
	}
	return sum
}

// dotQ4KGo is ggml_vec_dot_q4_K_q8_K: the scales multiply integer sub-block sums,
// and the mins meet the activation's bsums instead of every value.
func dotQ4KGo(w []byte, a *q8KAct, b0, nb int) float32 {
	var sum float32
	for b := 0; b < nb; b++ {
		blk := w[b*q4KLen : b*q4KLen+q4KLen]
		qa := a.qs[(b0+b)*qkK : (b0+b)*qkK+qkK]
		bs := a.bsums[(b0+b)*16 : (b0+b)*16+16]
		scales := blk[4:16]
		q := blk[16:144]
		var sumi, summ int32
		for j := range 4 {
			sc1, m1 := scaleMinK4(2*j, scales)
			sc2, m2 := scaleMinK4(2*j+1, scales)
			qq := q[32*j : 32*j+32]
			x := qa[64*j : 64*j+64]
			var s1, s2 int32
			for l := range 32 {
				s1 += int32(qq[l]&0xf) * int32(x[l])
				s2 += int32(qq[l]>>4) * int32(x[l+32])
			}
			sumi += int32(sc1)*s1 + int32(sc2)*s2
			summ += int32(m1)*(int32(bs[4*j])+int32(bs[4*j+1])) + int32(m2)*(int32(bs[4*j+2])+int32(bs[4*j+3]))
		}
		d := a.d[b0+b]
		sum += d*halfAt(blk, 0)*float32(sumi) - d*halfAt(blk, 2)*float32(summ)
	}
	return sum
}

// dotQ6KGo is ggml_vec_dot_q6_K_q8_K.
func dotQ6KGo(w []byte, a *q8KAct, b0, nb int) float32 {
	var sum float32
	for b := 0; b < nb; b++ {
		blk := w[b*q6KLen : b*q6KLen+q6KLen]
		qa := a.qs[(b0+b)*qkK : (b0+b)*qkK+qkK]
		var sumi int32
		for n := range 2 {
			ql := blk[64*n : 64*n+64]
			qh := blk[128+32*n : 128+32*n+32]
			sc := blk[192+8*n : 192+8*n+8]
			x := qa[128*n : 128*n+128]
			var s [8]int32
			for l := range 32 {
				is := l / 16
				q1 := int32(ql[l]&0xf|(qh[l]&3)<<4) - 32
				q2 := int32(ql[l+32]&0xf|(qh[l]>>2&3)<<4) - 32
				q3 := int32(ql[l]>>4|(qh[l]>>4&3)<<4) - 32
				q4 := int32(ql[l+32]>>4|(qh[l]>>6&3)<<4) - 32
				s[is] += q1 * int32(x[l])
				s[is+2] += q2 * int32(x[l+32])
				s[is+4] += q3 * int32(x[l+64])
				s[is+6] += q4 * int32(x[l+96])
			}
			for k := range 8 {
				sumi += int32(int8(sc[k])) * s[k]
			}
		}
		sum += a.d[b0+b] * halfAt(blk, 208) * float32(sumi)
	}
	return sum
}
