//go:build !unix

package model

import "os"

// mapFile reads the whole file where no mmap is wired up (Windows): correct, at the
// cost of holding the weights in the heap.
func mapFile(path string) ([]byte, func() error, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, nil, err
	}
	return data, func() error { return nil }, nil
}
