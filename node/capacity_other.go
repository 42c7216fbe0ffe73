//go:build !windows

package node

// osAvailableMemory has no source besides /proc/meminfo here (macOS's own
// figure, free plus reclaimable pages, is not exposed as one number): 0, so
// availableMemory assumes its default.
func osAvailableMemory() int64 { return 0 }
