//go:build (linux || darwin) && !nodlopen

package opencl

import (
	"errors"
	"fmt"

	"github.com/ebitengine/purego"
)

// libraries are the names the OpenCL ICD loader goes by: Linux's sonames (the
// unversioned one only exists with the -dev package), and macOS's framework.
var libraries = []string{
	"libOpenCL.so.1", "libOpenCL.so",
	"/System/Library/Frameworks/OpenCL.framework/OpenCL",
}

// load opens the first OpenCL library that answers, or the one at path. The
// library stays loaded for the life of the process: unloading an ICD loader
// whose drivers started threads is not safe.
func load(path string) (*api, error) {
	names := libraries
	if path != "" {
		names = []string{path}
	}
	var errs []error
	for _, name := range names {
		h, err := purego.Dlopen(name, purego.RTLD_NOW|purego.RTLD_LOCAL)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		a, err := bind(name, func(sym string) (uintptr, error) { return purego.Dlsym(h, sym) })
		if err != nil {
			purego.Dlclose(h)
			errs = append(errs, err)
			continue
		}
		return a, nil
	}
	return nil, fmt.Errorf("%w: no OpenCL library: %w", ErrUnavailable, errors.Join(errs...))
}
