//go:build ((linux || darwin) && !nodlopen) || windows

package opencl

import (
	"fmt"

	"github.com/ebitengine/purego"
)

// bind resolves every function of the api through sym (dlsym or
// GetProcAddress), so a library missing one fails here, with its name, rather
// than at the first call.
func bind(lib string, sym func(name string) (uintptr, error)) (*api, error) {
	a := &api{}
	for _, f := range []struct {
		name string
		fn   any
	}{
		{"clGetPlatformIDs", &a.getPlatformIDs}, {"clGetPlatformInfo", &a.getPlatformInfo},
		{"clGetDeviceIDs", &a.getDeviceIDs}, {"clGetDeviceInfo", &a.getDeviceInfo},
		{"clCreateContext", &a.createContext}, {"clCreateCommandQueue", &a.createCommandQueue},
		{"clCreateProgramWithSource", &a.createProgramWithSource}, {"clBuildProgram", &a.buildProgram},
		{"clGetProgramBuildInfo", &a.getProgramBuildInfo}, {"clCreateKernel", &a.createKernel},
		{"clGetKernelWorkGroupInfo", &a.getKernelWorkGroupInfo}, {"clSetKernelArg", &a.setKernelArg},
		{"clCreateBuffer", &a.createBuffer}, {"clEnqueueWriteBuffer", &a.enqueueWriteBuffer},
		{"clEnqueueReadBuffer", &a.enqueueReadBuffer}, {"clEnqueueNDRangeKernel", &a.enqueueNDRangeKernel},
		{"clFinish", &a.finish}, {"clReleaseMemObject", &a.releaseMemObject},
		{"clReleaseKernel", &a.releaseKernel}, {"clReleaseProgram", &a.releaseProgram},
		{"clReleaseCommandQueue", &a.releaseCommandQueue}, {"clReleaseContext", &a.releaseContext},
	} {
		p, err := sym(f.name)
		if err != nil || p == 0 {
			return nil, fmt.Errorf("%w: %s has no %s: %v", ErrUnavailable, lib, f.name, err)
		}
		purego.RegisterFunc(f.fn, p)
	}
	return a, nil
}
