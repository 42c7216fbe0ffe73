//go:build !(linux || darwin) || nodlopen

package opencl

import (
	"errors"
	"fmt"
)

func load(string) (*api, error) {
	return nil, fmt.Errorf("%w: %w", ErrUnavailable, errors.New("this build cannot load shared libraries (Windows, or -tags nodlopen)"))
}
