package model

import (
	"encoding/binary"
	"math"
	"os"
	"testing"
)

func putF32(b []byte, f float32) { binary.LittleEndian.PutUint32(b, math.Float32bits(f)) }

// stories260K returns the bytes of the reference model shipped in assets/, skipping
// the test when the checkout has none.
func stories260K(t testing.TB) []byte {
	t.Helper()
	b, err := os.ReadFile("../../assets/stories260K.gguf")
	if os.IsNotExist(err) {
		t.Skip("assets/stories260K.gguf is not in this checkout")
	}
	if err != nil {
		t.Fatal(err)
	}
	return b
}
