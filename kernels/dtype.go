package kernels

import (
	"fmt"
	"math"
)

// DType is the element type of a tensor, numbered as GGML numbers them so that a
// GGUF tensor's type field is a DType without translation.
type DType uint32

// The types imece reads. Block layouts match ggml-common.h byte for byte, because
// the weights arrive straight from GGUF files written by llama.cpp's tools.
const (
	F32  DType = 0
	F16  DType = 1
	Q4_0 DType = 2
	Q8_0 DType = 8
	Q4_K DType = 12
	Q6_K DType = 14
	BF16 DType = 30
)

type typeInfo struct {
	name      string
	blockSize int // elements per block
	typeSize  int // bytes per block
}

func (t DType) info() (typeInfo, bool) {
	switch t {
	case F32:
		return typeInfo{"f32", 1, 4}, true
	case F16:
		return typeInfo{"f16", 1, 2}, true
	case BF16:
		return typeInfo{"bf16", 1, 2}, true
	case Q4_0:
		return typeInfo{"q4_0", 32, 18}, true
	case Q8_0:
		return typeInfo{"q8_0", 32, 34}, true
	case Q4_K:
		return typeInfo{"q4_K", 256, 144}, true
	case Q6_K:
		return typeInfo{"q6_K", 256, 210}, true
	}
	return typeInfo{}, false
}

// Valid reports whether imece can read tensors of this type.
func (t DType) Valid() bool { _, ok := t.info(); return ok }

// String returns the name llama.cpp uses for the type (f32, q8_0, q4_K…).
func (t DType) String() string {
	if i, ok := t.info(); ok {
		return i.name
	}
	return fmt.Sprintf("type(%d)", uint32(t))
}

// ParseDType is the inverse of String, case-insensitive, for command-line flags.
func ParseDType(s string) (DType, error) {
	for _, t := range []DType{F32, F16, BF16, Q4_0, Q8_0, Q4_K, Q6_K} {
		if equalFold(s, t.String()) {
			return t, nil
		}
	}
	return 0, fmt.Errorf("unknown tensor type %q (want f32, f16, bf16, q8_0, q4_0, q4_k or q6_k)", s)
}

func equalFold(a, b string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := 0; i < len(a); i++ {
		x, y := a[i], b[i]
		if 'A' <= x && x <= 'Z' {
			x += 'a' - 'A'
		}
		if 'A' <= y && y <= 'Z' {
			y += 'a' - 'A'
		}
		if x != y {
			return false
		}
	}
	return true
}

// BlockSize is the number of elements a block of this type holds; rows must be a
// multiple of it.
func (t DType) BlockSize() int { i, _ := t.info(); return i.blockSize }

// TypeSize is the number of bytes one block occupies.
func (t DType) TypeSize() int { i, _ := t.info(); return i.typeSize }

// RowBytes returns the byte size of n elements of this type, or an error when n is not
// a whole number of blocks or the type is unknown. Loaders call it on untrusted shapes,
// so it also guards against overflow.
func (t DType) RowBytes(n int64) (int64, error) {
	i, ok := t.info()
	if !ok {
		return 0, fmt.Errorf("unsupported tensor type %s", t)
	}
	if n < 0 {
		return 0, fmt.Errorf("negative element count %d", n)
	}
	if n%int64(i.blockSize) != 0 {
		return 0, fmt.Errorf("%d elements of %s is not a whole number of %d-element blocks", n, t, i.blockSize)
	}
	blocks := n / int64(i.blockSize)
	if blocks > math.MaxInt64/int64(i.typeSize) {
		return 0, fmt.Errorf("%d elements of %s overflow", n, t)
	}
	return blocks * int64(i.typeSize), nil
}

// BitsPerWeight is the storage cost of one element, used for memory estimates and
// for the precision factor of the credit formulas.
func (t DType) BitsPerWeight() float64 {
	i, ok := t.info()
	if !ok {
		return 0
	}
	return float64(i.typeSize*8) / float64(i.blockSize)
}
