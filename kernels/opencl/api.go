package opencl

import "unsafe"

// api is the part of the OpenCL 1.2 C API the backend uses, bound at run time
// through purego: one binary, no cgo, and no OpenCL needed to build or start.
// Each field is named after the C function without its "cl" prefix.
type api struct {
	getPlatformIDs          func(n uint32, platforms *uintptr, count *uint32) int32
	getPlatformInfo         func(platform uintptr, param uint32, size uintptr, value unsafe.Pointer, ret *uintptr) int32
	getDeviceIDs            func(platform uintptr, typ uint64, n uint32, devices *uintptr, count *uint32) int32
	getDeviceInfo           func(device uintptr, param uint32, size uintptr, value unsafe.Pointer, ret *uintptr) int32
	createContext           func(props *uintptr, n uint32, devices *uintptr, notify, user uintptr, errcode *int32) uintptr
	createCommandQueue      func(ctx, device uintptr, props uint64, errcode *int32) uintptr
	createProgramWithSource func(ctx uintptr, n uint32, src **byte, lengths *uintptr, errcode *int32) uintptr
	buildProgram            func(prog uintptr, n uint32, devices *uintptr, options *byte, notify, user uintptr) int32
	getProgramBuildInfo     func(prog, device uintptr, param uint32, size uintptr, value unsafe.Pointer, ret *uintptr) int32
	createKernel            func(prog uintptr, name *byte, errcode *int32) uintptr
	getKernelWorkGroupInfo  func(kernel, device uintptr, param uint32, size uintptr, value unsafe.Pointer, ret *uintptr) int32
	setKernelArg            func(kernel uintptr, index uint32, size uintptr, value unsafe.Pointer) int32
	createBuffer            func(ctx uintptr, flags uint64, size uintptr, host unsafe.Pointer, errcode *int32) uintptr
	enqueueWriteBuffer      func(queue, buf uintptr, blocking uint32, offset, size uintptr, ptr unsafe.Pointer, nEvents uint32, events, event uintptr) int32
	enqueueReadBuffer       func(queue, buf uintptr, blocking uint32, offset, size uintptr, ptr unsafe.Pointer, nEvents uint32, events, event uintptr) int32
	enqueueNDRangeKernel    func(queue, kernel uintptr, dims uint32, offset, global, local *uintptr, nEvents uint32, events, event uintptr) int32
	finish                  func(queue uintptr) int32
	releaseMemObject        func(uintptr) int32
	releaseKernel           func(uintptr) int32
	releaseProgram          func(uintptr) int32
	releaseCommandQueue     func(uintptr) int32
	releaseContext          func(uintptr) int32
}
