package kernelstest_test

import (
	"testing"

	"github.com/imece/imece/kernels"
	"github.com/imece/imece/kernels/kernelstest"
)

// TestCPU: the CPU backend passes the suite on every instruction set this
// machine has, the portable one included.
func TestCPU(t *testing.T) {
	for _, isa := range []string{"", "generic"} {
		t.Run("isa="+isa, func(t *testing.T) {
			be, err := kernels.NewCPU(kernels.WithISA(isa), kernels.WithThreads(2))
			if err != nil {
				t.Fatal(err)
			}
			defer be.Close()
			kernelstest.Conformance(t, be)
		})
	}
}
