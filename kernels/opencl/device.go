package opencl

import (
	"errors"
	"fmt"
	"strings"
	"unsafe"
)

// ErrUnavailable reports that no OpenCL library could be loaded, or that it
// offers no usable device: the machine has no OpenCL, which is not a fault.
// Callers fall back to the CPU backend (kernels/backends does).
var ErrUnavailable = errors.New("opencl: unavailable")

// OpenCL constants (cl.h, OpenCL 1.2).
const (
	clSuccess = 0

	clDeviceTypeCPU         = 1 << 1
	clDeviceTypeGPU         = 1 << 2
	clDeviceTypeAccelerator = 1 << 3
	clDeviceTypeAll         = 0xFFFFFFFF

	clPlatformName           = 0x0902
	clDeviceType             = 0x1000
	clDeviceMaxWorkGroupSize = 0x1004
	clDeviceMaxMemAllocSize  = 0x1010
	clDeviceGlobalMemSize    = 0x101F
	clDeviceName             = 0x102B
	clDeviceVendor           = 0x102C
	clProgramBuildLog        = 0x1183
	clKernelWorkGroupSize    = 0x11B0

	clMemReadWrite   = 1 << 0
	clMemReadOnly    = 1 << 2
	clMemCopyHostPtr = 1 << 5

	maxPlatforms = 16
	maxDevices   = 64
)

// Device describes an OpenCL device as the backend ranks them: what
// --backend logs, and what WithDevice and WithDeviceName pick from.
type Device struct {
	// Index is the device's place in preference order: GPUs first, then
	// accelerators, then CPUs, platform by platform.
	Index    int
	Name     string
	Vendor   string
	Platform string
	// Type is "gpu", "accelerator" or "cpu".
	Type string
	// GlobalMem and MaxAlloc are the device's memory and its largest single
	// buffer, in bytes: a weight matrix larger than MaxAlloc stays on the CPU.
	GlobalMem, MaxAlloc uint64
	// MaxWorkGroup is the largest work-group the device runs.
	MaxWorkGroup int

	id uintptr
}

func (d Device) String() string {
	return fmt.Sprintf("#%d %s (%s, %s, %d MiB)", d.Index, d.Name, d.Type, d.Platform, d.GlobalMem>>20)
}

// Devices lists the OpenCL devices of every platform in preference order. It
// loads the OpenCL library (WithLibrary applies; other options are ignored)
// and returns ErrUnavailable when there is none.
func Devices(opts ...Option) ([]Device, error) {
	cfg, err := configure(opts)
	if err != nil {
		return nil, err
	}
	cl, err := load(cfg.library)
	if err != nil {
		return nil, err
	}
	return cl.devices()
}

func (cl *api) devices() ([]Device, error) {
	var platforms [maxPlatforms]uintptr
	var np uint32
	if code := cl.getPlatformIDs(maxPlatforms, &platforms[0], &np); code != clSuccess || np == 0 {
		return nil, fmt.Errorf("%w: no OpenCL platform (clGetPlatformIDs: %s)", ErrUnavailable, codeName(code))
	}
	var ranked [3][]Device // gpu, accelerator, cpu
	for _, p := range platforms[:min(np, maxPlatforms)] {
		pname := cl.platformString(p, clPlatformName)
		var ids [maxDevices]uintptr
		var nd uint32
		if cl.getDeviceIDs(p, clDeviceTypeAll, maxDevices, &ids[0], &nd) != clSuccess {
			continue // CL_DEVICE_NOT_FOUND: a platform without devices
		}
		for _, id := range ids[:min(nd, maxDevices)] {
			d := Device{
				Name: cl.deviceString(id, clDeviceName), Vendor: cl.deviceString(id, clDeviceVendor),
				Platform: pname, id: id,
				GlobalMem: cl.deviceUint(id, clDeviceGlobalMemSize), MaxAlloc: cl.deviceUint(id, clDeviceMaxMemAllocSize),
				MaxWorkGroup: int(cl.deviceUint(id, clDeviceMaxWorkGroupSize)),
			}
			rank := 2
			switch t := cl.deviceUint(id, clDeviceType); {
			case t&clDeviceTypeGPU != 0:
				d.Type, rank = "gpu", 0
			case t&clDeviceTypeAccelerator != 0:
				d.Type, rank = "accelerator", 1
			default:
				d.Type = "cpu"
			}
			ranked[rank] = append(ranked[rank], d)
		}
	}
	all := append(append(ranked[0], ranked[1]...), ranked[2]...)
	if len(all) == 0 {
		return nil, fmt.Errorf("%w: %d OpenCL platforms but no device", ErrUnavailable, np)
	}
	for i := range all {
		all[i].Index = i
	}
	return all, nil
}

// pick is the device cfg asks for: by name, by index, or the first.
func pick(all []Device, cfg *config) (Device, error) {
	if cfg.deviceName != "" {
		for _, d := range all {
			if strings.Contains(strings.ToLower(d.Name), strings.ToLower(cfg.deviceName)) {
				return d, nil
			}
		}
		return Device{}, fmt.Errorf("%w: no device named like %q among %v", ErrUnavailable, cfg.deviceName, all)
	}
	if cfg.device >= len(all) {
		return Device{}, fmt.Errorf("%w: device %d asked for, %d found: %v", ErrUnavailable, cfg.device, len(all), all)
	}
	return all[cfg.device], nil
}

func (cl *api) deviceString(id uintptr, param uint32) string {
	var buf [512]byte
	var n uintptr
	if cl.getDeviceInfo(id, param, uintptr(len(buf)), unsafe.Pointer(&buf[0]), &n) != clSuccess {
		return "?"
	}
	return strings.TrimSpace(strings.TrimRight(string(buf[:min(int(n), len(buf))]), "\x00"))
}

func (cl *api) platformString(id uintptr, param uint32) string {
	var buf [512]byte
	var n uintptr
	if cl.getPlatformInfo(id, param, uintptr(len(buf)), unsafe.Pointer(&buf[0]), &n) != clSuccess {
		return "?"
	}
	return strings.TrimSpace(strings.TrimRight(string(buf[:min(int(n), len(buf))]), "\x00"))
}

// deviceUint reads a cl_ulong, size_t or cl_bitfield parameter (all 8 bytes
// on the 64-bit systems imece runs on; a 4-byte answer fills the low half).
func (cl *api) deviceUint(id uintptr, param uint32) uint64 {
	var v uint64
	if cl.getDeviceInfo(id, param, 8, unsafe.Pointer(&v), nil) != clSuccess {
		return 0
	}
	return v
}

// clError is an OpenCL call's failure, with the code's name from cl.h.
func clError(call string, code int32) error {
	return fmt.Errorf("opencl: %s: %s", call, codeName(code))
}

func codeName(code int32) string {
	names := map[int32]string{
		0: "CL_SUCCESS", -1: "CL_DEVICE_NOT_FOUND", -2: "CL_DEVICE_NOT_AVAILABLE",
		-4: "CL_MEM_OBJECT_ALLOCATION_FAILURE", -5: "CL_OUT_OF_RESOURCES", -6: "CL_OUT_OF_HOST_MEMORY",
		-11: "CL_BUILD_PROGRAM_FAILURE", -30: "CL_INVALID_VALUE", -33: "CL_INVALID_DEVICE",
		-34: "CL_INVALID_CONTEXT", -36: "CL_INVALID_COMMAND_QUEUE", -38: "CL_INVALID_MEM_OBJECT",
		-46: "CL_INVALID_KERNEL_NAME", -48: "CL_INVALID_KERNEL", -49: "CL_INVALID_ARG_INDEX",
		-50: "CL_INVALID_ARG_VALUE", -51: "CL_INVALID_ARG_SIZE", -52: "CL_INVALID_KERNEL_ARGS",
		-54: "CL_INVALID_WORK_GROUP_SIZE", -55: "CL_INVALID_WORK_ITEM_SIZE", -61: "CL_INVALID_BUFFER_SIZE",
		-63: "CL_INVALID_GLOBAL_WORK_SIZE", -1001: "CL_PLATFORM_NOT_FOUND_KHR",
	}
	if s, ok := names[code]; ok {
		return s
	}
	return fmt.Sprintf("error %d", code)
}
