//go:build (linux || darwin) && !nodlopen

package opencl

import (
	"errors"
	"fmt"

	"github.com/ebitengine/purego"
)

// libraries are the names the OpenCL ICD loader goes by: Linux's sonames, and
// macOS's framework.
var libraries = []string{
	"libOpenCL.so.1", "libOpenCL.so",
	"/System/Library/Frameworks/OpenCL.framework/OpenCL",
}

// load opens the first OpenCL library that answers, or the one at path.
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
		if _, err := purego.Dlsym(h, "clGetPlatformIDs"); err != nil {
			purego.Dlclose(h)
			errs = append(errs, fmt.Errorf("%s has no clGetPlatformIDs: %w", name, err))
			continue
		}
		a := &api{lib: h}
		for sym, fn := range map[string]any{
			"clGetPlatformIDs": &a.getPlatformIDs, "clGetDeviceIDs": &a.getDeviceIDs,
			"clGetDeviceInfo": &a.getDeviceInfo, "clCreateContext": &a.createContext,
			"clCreateCommandQueue": &a.createCommandQueue, "clCreateProgramWithSource": &a.createProgramWithSource,
			"clBuildProgram": &a.buildProgram, "clGetProgramBuildInfo": &a.getProgramBuildInfo,
			"clCreateKernel": &a.createKernel, "clSetKernelArg": &a.setKernelArg,
			"clCreateBuffer": &a.createBuffer, "clEnqueueWriteBuffer": &a.enqueueWriteBuffer,
			"clEnqueueReadBuffer": &a.enqueueReadBuffer, "clEnqueueNDRangeKernel": &a.enqueueNDRangeKernel,
			"clFinish": &a.finish, "clReleaseMemObject": &a.releaseMemObject, "clReleaseKernel": &a.releaseKernel,
			"clReleaseProgram": &a.releaseProgram, "clReleaseCommandQueue": &a.releaseCommandQueue,
			"clReleaseContext": &a.releaseContext,
		} {
			if _, err := purego.Dlsym(h, sym); err != nil {
				purego.Dlclose(h)
				return nil, fmt.Errorf("%s lacks %s: %w", name, sym, err)
			}
			purego.RegisterLibFunc(fn, h, sym)
		}
		return a, nil
	}
	return nil, fmt.Errorf("%w: %w", ErrUnavailable, errors.Join(errs...))
}
