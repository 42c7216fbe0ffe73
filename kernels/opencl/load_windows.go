//go:build windows

package opencl

import (
	"fmt"
	"syscall"
)

// library is the OpenCL ICD loader every Windows GPU driver installs in
// System32.
const library = "OpenCL.dll"

// load opens OpenCL.dll (or the library at path) with the standard syscall
// package; purego calls into it without cgo.
func load(path string) (*api, error) {
	name := library
	if path != "" {
		name = path
	}
	h, err := syscall.LoadLibrary(name)
	if err != nil {
		return nil, fmt.Errorf("%w: no OpenCL library: %s: %w", ErrUnavailable, name, err)
	}
	a, err := bind(name, func(sym string) (uintptr, error) { return syscall.GetProcAddress(h, sym) })
	if err != nil {
		syscall.FreeLibrary(h)
		return nil, err
	}
	return a, nil
}
