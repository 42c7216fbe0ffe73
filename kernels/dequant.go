package kernels

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
)

// Block geometry, from ggml-common.h. A K-quant super-block holds 256 weights.
const (
	qk      = 32  // elements of a Q4_0/Q8_0 block
	qkK     = 256 // elements of a K-quant super-block
	q8_0Len = 34  // f16 d, int8 qs[32]
	q4_0Len = 18  // f16 d, uint8 qs[16]
	q4KLen  = 144 // f16 d, f16 dmin, uint8 scales[12], uint8 qs[128]
	q6KLen  = 210 // uint8 ql[128], uint8 qh[64], int8 scales[16], f16 d
)

// ErrLength reports a buffer whose length is not what its type and element count
// require; Dequantize and Quantize wrap it so callers can tell bad input from
// unsupported types.
var ErrLength = errors.New("kernels: buffer length does not match tensor type")

// Dequantize expands src, a whole number of blocks of dt, into float32 values in dst,
// which must hold exactly the number of elements src encodes. It decodes bytes that
// come from disk, so every size is checked and it never panics on bad lengths; the
// values themselves are decoded as llama.cpp decodes them, NaNs and all.
func Dequantize(dst []float32, dt DType, src []byte) error {
	info, ok := dt.info()
	if !ok {
		return fmt.Errorf("dequantize: unsupported tensor type %s", dt)
	}
	if len(src)%info.typeSize != 0 {
		return fmt.Errorf("dequantize %s: %d bytes is not a whole number of %d-byte blocks: %w",
			dt, len(src), info.typeSize, ErrLength)
	}
	n := len(src) / info.typeSize * info.blockSize
	if len(dst) != n {
		return fmt.Errorf("dequantize %s: %d bytes hold %d values, destination has %d: %w",
			dt, len(src), n, len(dst), ErrLength)
	}
	dequantizeUnchecked(dst, dt, src)
	return nil
}

// dequantizeUnchecked is Dequantize without the checks, for callers that sized the
// buffers themselves (matrix rows).
func dequantizeUnchecked(dst []float32, dt DType, src []byte) {
	switch dt {
	case F32:
		for i := range dst {
			dst[i] = math.Float32frombits(binary.LittleEndian.Uint32(src[4*i:]))
		}
	case F16:
		for i := range dst {
			dst[i] = F16ToF32(binary.LittleEndian.Uint16(src[2*i:]))
		}
	case BF16:
		for i := range dst {
			dst[i] = BF16ToF32(binary.LittleEndian.Uint16(src[2*i:]))
		}
	case Q8_0:
		for b := 0; b < len(src)/q8_0Len; b++ {
			dequantQ8_0(dst[b*qk:(b+1)*qk], src[b*q8_0Len:(b+1)*q8_0Len])
		}
	case Q4_0:
		for b := 0; b < len(src)/q4_0Len; b++ {
			dequantQ4_0(dst[b*qk:(b+1)*qk], src[b*q4_0Len:(b+1)*q4_0Len])
		}
	case Q4_K:
		for b := 0; b < len(src)/q4KLen; b++ {
			dequantQ4K(dst[b*qkK:(b+1)*qkK], src[b*q4KLen:(b+1)*q4KLen])
		}
	case Q6_K:
		for b := 0; b < len(src)/q6KLen; b++ {
			dequantQ6K(dst[b*qkK:(b+1)*qkK], src[b*q6KLen:(b+1)*q6KLen])
		}
	}
}

func halfAt(b []byte, off int) float32 {
	return F16ToF32(uint16(b[off]) | uint16(b[off+1])<<8)
}

// dequantQ8_0: y = d · qs.
func dequantQ8_0(y []float32, b []byte) {
	d := halfAt(b, 0)
	qs := b[2:34]
	for j := range 32 {
		y[j] = float32(int8(qs[j])) * d
	}
}

// dequantQ4_0: element j is the low nibble of qs[j], element j+16 the high one,
// both offset by 8.
func dequantQ4_0(y []float32, b []byte) {
	d := halfAt(b, 0)
	qs := b[2:18]
	for j := range 16 {
		y[j] = float32(int32(qs[j]&0xf)-8) * d
		y[j+16] = float32(int32(qs[j]>>4)-8) * d
	}
}

// scaleMinK4 unpacks the 6-bit scale and min of sub-block j from the 12 packed bytes
// of a Q4_K block (get_scale_min_k4).
func scaleMinK4(j int, q []byte) (sc, m uint8) {
	if j < 4 {
		return q[j] & 63, q[j+4] & 63
	}
	return q[j+4]&0xf | (q[j-4]>>6)<<4, q[j+4]>>4 | (q[j]>>6)<<4
}

// dequantQ4K: eight sub-blocks of 32, each y = d·sc·q − dmin·m; the 128 qs bytes
// hold sub-blocks pairwise, low nibbles first.
func dequantQ4K(y []float32, b []byte) {
	d := halfAt(b, 0)
	dmin := halfAt(b, 2)
	scales := b[4:16]
	q := b[16:144]
	for j := range 4 {
		sc, m := scaleMinK4(2*j, scales)
		d1, m1 := d*float32(sc), dmin*float32(m)
		sc, m = scaleMinK4(2*j+1, scales)
		d2, m2 := d*float32(sc), dmin*float32(m)
		qq := q[32*j : 32*j+32]
		yy := y[64*j : 64*j+64]
		for l := range 32 {
			yy[l] = d1*float32(qq[l]&0xf) - m1
			yy[l+32] = d2*float32(qq[l]>>4) - m2
		}
	}
}

// dequantQ6K: 6-bit values (4 low bits in ql, 2 high bits in qh) offset by 32, one
// int8 scale per 16 elements, one f16 d per block.
func dequantQ6K(y []float32, b []byte) {
	d := halfAt(b, 208)
	for n := range 2 {
		ql := b[64*n : 64*n+64]
		qh := b[128+32*n : 128+32*n+32]
		sc := b[192+8*n : 192+8*n+8]
		yy := y[128*n : 128*n+128]
		for l := range 32 {
			is := l / 16
			q1 := int32(ql[l]&0xf|(qh[l]>>0&3)<<4) - 32
			q2 := int32(ql[l+32]&0xf|(qh[l]>>2&3)<<4) - 32
			q3 := int32(ql[l]>>4|(qh[l]>>4&3)<<4) - 32
			q4 := int32(ql[l+32]>>4|(qh[l]>>6&3)<<4) - 32
			yy[l] = d * float32(int8(sc[is])) * float32(q1)
			yy[l+32] = d * float32(int8(sc[is+2])) * float32(q2)
			yy[l+64] = d * float32(int8(sc[is+4])) * float32(q3)
			yy[l+96] = d * float32(int8(sc[is+6])) * float32(q4)
		}
	}
}
