package node

import (
	"syscall"
	"unsafe"
)

// memoryStatusEx is Windows' MEMORYSTATUSEX.
type memoryStatusEx struct {
	length               uint32
	memoryLoad           uint32
	totalPhys            uint64
	availPhys            uint64
	totalPageFile        uint64
	availPageFile        uint64
	totalVirtual         uint64
	availVirtual         uint64
	availExtendedVirtual uint64
}

// osAvailableMemory is the physical memory Windows can give without paging
// (GlobalMemoryStatusEx's ullAvailPhys, standby pages included, like Linux's
// MemAvailable), so --layers auto sizes a Windows volunteer by its machine too;
// 0 if the call fails.
func osAvailableMemory() int64 {
	proc := syscall.NewLazyDLL("kernel32.dll").NewProc("GlobalMemoryStatusEx")
	if proc.Find() != nil {
		return 0
	}
	st := memoryStatusEx{length: uint32(unsafe.Sizeof(memoryStatusEx{}))}
	if ok, _, _ := proc.Call(uintptr(unsafe.Pointer(&st))); ok == 0 {
		return 0
	}
	return int64(min(st.availPhys, 1<<62))
}
