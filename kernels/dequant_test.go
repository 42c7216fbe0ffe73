package kernels

import (
	"errors"
	"math"
	"math/rand/v2"
	"testing"
)

// Blocks written byte by byte from ggml-common.h, with the floats they encode
// worked out by hand in the comments.

func TestDequantizeQ8_0Hand(t *testing.T) {
	b := make([]byte, 34)
	b[0], b[1] = 0x00, 0x38 // d = 0.5
	b[2], b[3], b[4], b[5] = 1, 0xfe, 127, 0x80
	want := make([]float32, 32)
	want[0], want[1], want[2], want[3] = 0.5, -1, 63.5, -64
	checkDequant(t, Q8_0, b, want)
}

func TestDequantizeQ4_0Hand(t *testing.T) {
	b := make([]byte, 18)
	b[0], b[1] = 0x00, 0x40 // d = 2
	for i := 2; i < 18; i++ {
		b[i] = 0x88 // both nibbles 8: zero
	}
	b[2] = 0x1f // y0 = (15-8)·2 = 14, y16 = (1-8)·2 = -14
	b[3] = 0x80 // y1 = (0-8)·2 = -16, y17 = 0
	want := make([]float32, 32)
	want[0], want[16], want[1] = 14, -14, -16
	checkDequant(t, Q4_0, b, want)
}

func TestDequantizeQ4KHand(t *testing.T) {
	b := make([]byte, 144)
	b[0], b[1] = 0x00, 0x3c // d = 1
	b[2], b[3] = 0x00, 0x38 // dmin = 0.5
	sc := b[4:16]
	sc[0], sc[4] = 2, 4 // sub-block 0: scale 2, min 4
	sc[1] = 0x41        // sub-block 1: scale 1; top bits 01 = high bits of scale 5
	sc[5] = 0x80        // sub-block 1: min 0; top bits 10 = high bits of min 5
	sc[9] = 0x53        // sub-block 5: scale 0x13 = 19, min 0x25 = 37
	q := b[16:]
	q[0] = 0x37  // y0 = 1·2·7 − 0.5·4 = 12; y32 = 1·1·3 − 0 = 3
	q[64] = 0xf0 // y128 = 0 (sub-block 4 is all zero); y160 = 19·15 − 0.5·37 = 266.5
	q[65] = 0x20 // y161 = 19·2 − 18.5 = 19.5
	want := make([]float32, 256)
	for l := range 32 {
		want[l] = -2        // sub-block 0, q = 0: −dmin·4
		want[160+l] = -18.5 // sub-block 5, q = 0: −0.5·37
	}
	want[0], want[32], want[160], want[161] = 12, 3, 266.5, 19.5
	checkDequant(t, Q4_K, b, want)
}

func TestDequantizeQ6KHand(t *testing.T) {
	b := make([]byte, 210)
	b[208], b[209] = 0x00, 0x34 // d = 0.25
	s := b[192:208]
	s[0], s[2], s[4], s[6], s[8] = 2, 0xfd, 1, 4, 5 // scale[2] = −3
	b[0] = 0x21                                     // ql[0]: low 1, high 2
	b[32] = 0x43                                    // ql[32]: low 3, high 4
	b[128] = 0xe4                                   // qh[0]: 2-bit fields 0, 1, 2, 3
	b[64] = 0x0f                                    // second half: ql[0] low 15
	b[128+32] = 0x03                                //               qh[0] low field 3
	want := make([]float32, 256)
	for l := range 16 { // q = 0 stored means −32
		want[l] = 0.25 * 2 * -32
		want[32+l] = 0.25 * -3 * -32
		want[64+l] = 0.25 * 1 * -32
		want[96+l] = 0.25 * 4 * -32
		want[128+l] = 0.25 * 5 * -32
	}
	want[0] = -15.5   // (1|0<<4)−32 = −31, ·0.25·2
	want[32] = 9.75   // (3|1<<4)−32 = −13, ·0.25·−3
	want[64] = 0.5    // (2|2<<4)−32 = 2, ·0.25·1
	want[96] = 20     // (4|3<<4)−32 = 20, ·0.25·4
	want[128] = 38.75 // (15|3<<4)−32 = 31, ·0.25·5
	checkDequant(t, Q6_K, b, want)
}

func TestDequantizeFloatsHand(t *testing.T) {
	checkDequant(t, F32, []byte{0, 0, 0x80, 0x3f, 0, 0, 0, 0xc0}, []float32{1, -2})
	checkDequant(t, F16, []byte{0x00, 0x3c, 0x01, 0x00}, []float32{1, 1.0 / 16777216})
	checkDequant(t, BF16, []byte{0x80, 0x3f, 0x49, 0x40}, []float32{1, 3.140625})
}

func checkDequant(t *testing.T, dt DType, b []byte, want []float32) {
	t.Helper()
	got := make([]float32, len(want))
	if err := Dequantize(got, dt, b); err != nil {
		t.Fatal(err)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("%s element %d = %g, want %g", dt, i, got[i], want[i])
		}
	}
}

func TestDequantizeBadLengths(t *testing.T) {
	for _, tc := range []struct {
		dt  DType
		src int
		dst int
	}{
		{Q8_0, 33, 32}, {Q8_0, 34, 31}, {Q8_0, 34, 33}, {Q4_K, 145, 256}, {F16, 3, 1}, {F32, 4, 2},
		{DType(99), 4, 1},
	} {
		err := Dequantize(make([]float32, tc.dst), tc.dt, make([]byte, tc.src))
		if err == nil {
			t.Errorf("%s: %d bytes into %d values: no error", tc.dt, tc.src, tc.dst)
		}
		if tc.dt.Valid() && !errors.Is(err, ErrLength) {
			t.Errorf("%s: error %v is not ErrLength", tc.dt, err)
		}
	}
	if err := Dequantize(nil, Q6_K, nil); err != nil {
		t.Errorf("empty input: %v", err)
	}
}

func TestQuantizeQ8_0Hand(t *testing.T) {
	x := make([]float32, 32)
	x[0], x[1], x[2] = 12.7, -6.35, 0.05 // d = 0.1: q = 127, −63.5 → −64 (away from zero), 0.5 → 1
	b := make([]byte, 34)
	if err := Quantize(b, Q8_0, x); err != nil {
		t.Fatal(err)
	}
	if d := halfAt(b, 0); d != F16ToF32(F32ToF16(0.1)) {
		t.Errorf("d = %g", d)
	}
	if q := [3]int8{int8(b[2]), int8(b[3]), int8(b[4])}; q != [3]int8{127, -64, 1} {
		t.Errorf("qs = %v, want [127 -64 1]", q)
	}
}

func TestQuantizeQ4_0Hand(t *testing.T) {
	x := make([]float32, 32)
	x[0], x[16], x[1] = -8, 8, 3 // max = −8 → d = 1, id = 1: q = x+8.5 truncated, at most 15
	b := make([]byte, 18)
	if err := Quantize(b, Q4_0, x); err != nil {
		t.Fatal(err)
	}
	if d := halfAt(b, 0); d != 1 {
		t.Errorf("d = %g", d)
	}
	if b[2] != 0<<0|15<<4 || b[3] != 11|8<<4 || b[4] != 8|8<<4 {
		t.Errorf("qs = %x", b[2:5])
	}
}

// Round trips of random rows stay within each format's error bound.
func TestQuantizeRoundTrip(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	for _, tc := range []struct {
		dt DType
		// relative RMS error bound for Gaussian data; Q8_0/Q4_0 also have a hard
		// per-element bound checked below
		rel float64
	}{
		{F32, 0}, {F16, 1e-3}, {BF16, 8e-3}, {Q8_0, 0.01}, {Q4_0, 0.16}, {Q4_K, 0.12}, {Q6_K, 0.035},
	} {
		n := 4096
		x := make([]float32, n)
		for i := range x {
			x[i] = float32(r.NormFloat64()) * 0.02
		}
		x[7] = 0.3 // an outlier, as real weights have
		rb, _ := tc.dt.RowBytes(int64(n))
		b := make([]byte, rb)
		if err := Quantize(b, tc.dt, x); err != nil {
			t.Fatal(err)
		}
		y := make([]float32, n)
		if err := Dequantize(y, tc.dt, b); err != nil {
			t.Fatal(err)
		}
		var se, ss float64
		for i := range x {
			d := float64(y[i] - x[i])
			se += d * d
			ss += float64(x[i]) * float64(x[i])
		}
		if rel := math.Sqrt(se / ss); rel > tc.rel {
			t.Errorf("%s: relative RMS error %.4f > %.4f", tc.dt, rel, tc.rel)
		}
		if tc.dt == Q8_0 || tc.dt == Q4_0 {
			bl, nb := tc.dt.TypeSize(), qk
			for blk := 0; blk < n/nb; blk++ {
				d := math.Abs(float64(halfAt(b, blk*bl)))
				bound := d/2 + 127*d/2048 // half a step, plus 127 times the f16 rounding of d
				if tc.dt == Q4_0 {
					bound = d + 8*d/2048 // the value opposite the maximum clamps at 7·d
				}
				for i := blk * nb; i < (blk+1)*nb; i++ {
					if e := math.Abs(float64(y[i] - x[i])); e > bound {
						t.Fatalf("%s element %d: error %g > %g", tc.dt, i, e, bound)
					}
				}
			}
		}
	}
}

func TestQuantizeBadLengths(t *testing.T) {
	if err := Quantize(make([]byte, 34), Q8_0, make([]float32, 31)); err == nil {
		t.Error("31 values into Q8_0: no error")
	}
	if err := Quantize(make([]byte, 33), Q8_0, make([]float32, 32)); !errors.Is(err, ErrLength) {
		t.Errorf("short destination: %v", err)
	}
}

// Zero blocks quantize to zero without dividing by zero.
func TestQuantizeZeros(t *testing.T) {
	for _, dt := range []DType{Q8_0, Q4_0, Q4_K, Q6_K} {
		x := make([]float32, 256)
		rb, _ := dt.RowBytes(256)
		b := make([]byte, rb)
		if err := Quantize(b, dt, x); err != nil {
			t.Fatal(err)
		}
		y := make([]float32, 256)
		_ = Dequantize(y, dt, b)
		for i, v := range y {
			if v != 0 {
				t.Fatalf("%s: element %d = %g", dt, i, v)
			}
		}
	}
}

func FuzzDequantize(f *testing.F) {
	f.Add(uint8(Q8_0), make([]byte, 34))
	f.Add(uint8(Q4_K), make([]byte, 144))
	f.Add(uint8(Q6_K), make([]byte, 210))
	f.Add(uint8(F16), []byte{1, 2, 3})
	f.Fuzz(func(t *testing.T, typ uint8, src []byte) {
		dt := DType(typ)
		n := 0
		if dt.Valid() {
			n = len(src) / dt.TypeSize() * dt.BlockSize()
		}
		dst := make([]float32, n)
		err := Dequantize(dst, dt, src)
		if dt.Valid() && len(src)%dt.TypeSize() == 0 && err != nil {
			t.Fatalf("%s, %d bytes: %v", dt, len(src), err)
		}
		if err == nil && dt.Valid() && dt != F32 {
			// Re-encoding the decoded values must not fail either.
			rb, _ := dt.RowBytes(int64(n))
			if qerr := Quantize(make([]byte, rb), dt, dst); qerr != nil {
				t.Fatal(qerr)
			}
		}
	})
}

// A Q4_K block whose values are exactly representable: every sub-block holds
// 0.1·(l mod 16). make_qkx2_quants finds scale 0.1 and min 0 everywhere, so the
// 6-bit scales are all 63 (packed: the low six bits of bytes 0–3, the high two
// bits of bytes 0–3 and the low nibbles of 8–11 for sub-blocks 4–7) and the mins
// all 0; each qs byte holds the same nibble twice.
func TestQuantizeQ4KHand(t *testing.T) {
	x := make([]float32, 256)
	for i := range x {
		x[i] = 0.1 * float32(i%16)
	}
	b := make([]byte, 144)
	if err := Quantize(b, Q4_K, x); err != nil {
		t.Fatal(err)
	}
	d := F32ToF16(float32(0.1) / 63)
	if got := uint16(b[0]) | uint16(b[1])<<8; got != d {
		t.Errorf("d = %#04x, want %#04x", got, d)
	}
	if b[2] != 0 || b[3] != 0 {
		t.Errorf("dmin = %#02x%02x, want 0", b[3], b[2])
	}
	wantScales := []byte{0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0, 0x0f, 0x0f, 0x0f, 0x0f}
	for i, v := range wantScales {
		if b[4+i] != v {
			t.Errorf("scales[%d] = %#02x, want %#02x", i, b[4+i], v)
		}
	}
	for l := range 128 {
		if want := byte(0x11 * (l % 16)); b[16+l] != want {
			t.Fatalf("qs[%d] = %#02x, want %#02x", l, b[16+l], want)
		}
	}
}

// A Q6_K block of sixteen identical groups 0.05·(k−32), k = 0…15: each group's
// scale is 0.05 (its largest magnitude, −1.6, maps to −32), so every int8 scale is
// −128 against d = −1/2560, and the stored 6-bit values are k: four low bits in
// both nibbles of ql, zero high bits in qh.
func TestQuantizeQ6KHand(t *testing.T) {
	x := make([]float32, 256)
	for i := range x {
		x[i] = 0.05 * float32(i%16-32)
	}
	b := make([]byte, 210)
	if err := Quantize(b, Q6_K, x); err != nil {
		t.Fatal(err)
	}
	if got, want := uint16(b[208])|uint16(b[209])<<8, F32ToF16(-1.0/2560); got != want {
		t.Errorf("d = %#04x, want %#04x", got, want)
	}
	for i := range 16 {
		if b[192+i] != 0x80 {
			t.Errorf("scales[%d] = %d, want -128", i, int8(b[192+i]))
		}
	}
	for l := range 128 {
		if want := byte(0x11 * (l % 16)); b[l] != want {
			t.Fatalf("ql[%d] = %#02x, want %#02x", l, b[l], want)
		}
	}
	for l := range 64 {
		if b[128+l] != 0 {
			t.Fatalf("qh[%d] = %#02x, want 0", l, b[128+l])
		}
	}
}
