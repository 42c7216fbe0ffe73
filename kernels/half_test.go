package kernels

import (
	"math"
	"math/rand/v2"
	"testing"
)

func TestF16ToF32HandValues(t *testing.T) {
	for _, tc := range []struct {
		h    uint16
		want float32
	}{
		{0x0000, 0},
		{0x3c00, 1},
		{0xc000, -2},
		{0x3555, 0.333251953125},        // 1+341/1024 times 2^-2
		{0x7bff, 65504},                 // largest finite
		{0x0400, 1.0 / 16384},           // smallest normal 2^-14
		{0x0001, 1.0 / 16777216},        // smallest subnormal 2^-24
		{0x03ff, 1023.0 / 16777216},     // largest subnormal
		{0x8001, -1.0 / 16777216},       // negative subnormal
		{0x7c00, float32(math.Inf(1))},  // +inf
		{0xfc00, float32(math.Inf(-1))}, // -inf
	} {
		if got := F16ToF32(tc.h); got != tc.want {
			t.Errorf("F16ToF32(%#04x) = %g, want %g", tc.h, got, tc.want)
		}
	}
	if got := math.Float32bits(F16ToF32(0x8000)); got != 0x80000000 {
		t.Errorf("negative zero became %#x", got)
	}
	if v := F16ToF32(0x7e01); v == v {
		t.Errorf("NaN decoded as %g", v)
	}
}

func TestF32ToF16Rounding(t *testing.T) {
	for _, tc := range []struct {
		f    float32
		want uint16
	}{
		{1, 0x3c00},
		{1 + 1.0/2048, 0x3c00}, // tie, even stays
		{1 + 3.0/2048, 0x3c02}, // tie, odd rounds up
		{65504, 0x7bff},
		{65519, 0x7bff}, // below the halfway point
		{65520, 0x7c00}, // halfway to 65536 rounds to even = inf
		{1e6, 0x7c00},
		{1.0 / 33554432, 0x0000}, // 2^-25: tie between 0 and 2^-24, even is 0
		{1.5 / 33554432, 0x0001}, // above the tie
		{3.0 / 33554432, 0x0002}, // 1.5·2^-24 ties to even: 2·2^-24
		{1.0 / 16384, 0x0400},
		{(1023.5) / 16777216, 0x0400}, // largest subnormal + half ulp carries into normal
		{-2, 0xc000},
		{float32(math.Inf(-1)), 0xfc00},
	} {
		if got := F32ToF16(tc.f); got != tc.want {
			t.Errorf("F32ToF16(%g) = %#04x, want %#04x", tc.f, got, tc.want)
		}
	}
	if h := F32ToF16(float32(math.NaN())); h&0x7c00 != 0x7c00 || h&0x3ff == 0 {
		t.Errorf("NaN encoded as %#04x", h)
	}
}

// Every half value survives the round trip; NaNs come back quiet.
func TestF16RoundTripExhaustive(t *testing.T) {
	for i := range 1 << 16 {
		h := uint16(i)
		got := F32ToF16(F16ToF32(h))
		if h&0x7c00 == 0x7c00 && h&0x3ff != 0 {
			if got != h|0x200 {
				t.Fatalf("NaN %#04x came back %#04x", h, got)
			}
			continue
		}
		if got != h {
			t.Fatalf("%#04x came back %#04x", h, got)
		}
	}
}

// Random floats round to the nearest half, ties to even.
func TestF32ToF16Nearest(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for range 200000 {
		f := math.Float32frombits(r.Uint32())
		if f != f || math.Abs(float64(f)) > 65504 {
			continue
		}
		h := F32ToF16(f)
		got := float64(F16ToF32(h))
		err := math.Abs(got - float64(f))
		for _, nb := range []uint16{h + 1, h - 1} {
			if nb&0x7c00 == 0x7c00 || nb&0x7fff == 0x7fff {
				continue
			}
			alt := math.Abs(float64(F16ToF32(nb)) - float64(f))
			if alt < err || (alt == err && h&1 == 1) {
				t.Fatalf("F32ToF16(%g) = %#04x (%g), but %#04x (%g) is nearer or even", f, h, got, nb, F16ToF32(nb))
			}
		}
	}
}

func TestBF16(t *testing.T) {
	for _, tc := range []struct {
		f    float32
		want uint16
	}{
		{1, 0x3f80},
		{-2, 0xc000},
		{math.Float32frombits(0x3f808000), 0x3f80}, // tie, even
		{math.Float32frombits(0x3f818000), 0x3f82}, // tie, odd rounds up
		{math.Float32frombits(0x3f808001), 0x3f81},
		{float32(math.Inf(1)), 0x7f80},
		{math.Float32frombits(0x7f800001), 0x7fc0}, // signalling NaN forced quiet
	} {
		if got := F32ToBF16(tc.f); got != tc.want {
			t.Errorf("F32ToBF16(%#08x) = %#04x, want %#04x", math.Float32bits(tc.f), got, tc.want)
		}
	}
	if got := BF16ToF32(0x4049); got != 3.140625 {
		t.Errorf("BF16ToF32(0x4049) = %g", got)
	}
}
