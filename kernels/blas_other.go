//go:build !(linux || darwin)

package kernels

var blasCandidates []string

func openBLAS(path string, threads int) (*blasLib, error) { return nil, errNoDL }
