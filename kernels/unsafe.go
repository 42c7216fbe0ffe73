package kernels

import "unsafe"

// bytesAsF32 views little-endian float32 data in place, or returns nil when b is not
// 4-byte aligned (the race detector's pointer checks reject such a view, and some
// architectures fault on it). Every target imece builds for is little-endian.
func bytesAsF32(b []byte) []float32 {
	if len(b) == 0 || uintptr(unsafe.Pointer(&b[0]))%4 != 0 {
		return nil
	}
	return unsafe.Slice((*float32)(unsafe.Pointer(&b[0])), len(b)/4)
}
