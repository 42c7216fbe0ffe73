//go:build (linux || darwin) && !nodlopen

package kernels

import (
	"fmt"
	"os"

	"github.com/ebitengine/purego"
)

// blasCandidates are the libraries tried when no path is given: OpenBLAS under
// its usual sonames, and Apple's Accelerate. The reference BLAS is left out on
// purpose: it is slower than the built-in kernels.
var blasCandidates = []string{
	"libopenblas.so.0", "libopenblas.so", "libopenblasp-r0.3.so",
	"libopenblas.dylib", "/opt/homebrew/opt/openblas/lib/libopenblas.dylib",
	"/System/Library/Frameworks/Accelerate.framework/Accelerate",
}

func openBLAS(path string) (*blasLib, error) {
	// OpenBLAS starts its thread pool when it is loaded, and those threads spin
	// for a while after every call; the backend's workers call it in parallel
	// instead, so ask for no pool unless the user chose otherwise.
	if os.Getenv("OPENBLAS_NUM_THREADS") == "" {
		os.Setenv("OPENBLAS_NUM_THREADS", "1")
	}
	h, err := purego.Dlopen(path, purego.RTLD_NOW|purego.RTLD_LOCAL)
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", path, err)
	}
	if _, err := purego.Dlsym(h, "cblas_sgemm"); err != nil {
		purego.Dlclose(h)
		return nil, fmt.Errorf("%s has no cblas_sgemm: %w", path, err)
	}
	b := &blasLib{path: path}
	purego.RegisterLibFunc(&b.sgemm, h, "cblas_sgemm")
	// The backend's workers call BLAS in parallel; its own threads stay idle.
	if _, err := purego.Dlsym(h, "openblas_set_num_threads"); err == nil {
		var setThreads func(int32)
		purego.RegisterLibFunc(&setThreads, h, "openblas_set_num_threads")
		setThreads(1)
	}
	return b, nil
}
