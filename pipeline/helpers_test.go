package pipeline

import (
	"testing"

	"github.com/imece/imece/kernels"
)

func newCPU(t *testing.T) kernels.Backend {
	be, err := kernels.NewCPU()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { be.Close() })
	return be
}
