//go:build !unix && !windows

package model

import "os"

// mapFile reads the whole file where no mapping is wired up (Plan 9, WebAssembly):
// correct, at the cost of holding the weights in the heap.
func mapFile(path string) ([]byte, func() error, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, nil, err
	}
	return data, func() error { return nil }, nil
}
