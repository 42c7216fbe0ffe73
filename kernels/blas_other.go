//go:build !(linux || darwin) || nodlopen

package kernels

import "errors"

// errNoDL: BLAS is optional, so a binary that cannot load shared libraries
// still runs, on the built-in kernels. That is Windows, and any build with the
// nodlopen tag: a static Linux binary (CGO_ENABLED=0 -tags nodlopen, as in the
// docker image) has no dynamic loader, and purego would make it need one.
var errNoDL = errors.New("kernels: this build cannot load shared libraries (Windows, or built with -tags nodlopen)")

var blasCandidates []string

func openBLAS(path string) (*blasLib, error) { return nil, errNoDL }
