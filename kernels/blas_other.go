//go:build !(linux || darwin)

package kernels

import "errors"

var errNoDL = errors.New("kernels: loading shared libraries is not supported on this platform")

var blasCandidates []string

func openBLAS(path string) (*blasLib, error) { return nil, errNoDL }
