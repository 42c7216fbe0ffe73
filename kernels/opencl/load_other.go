//go:build !windows && (!(linux || darwin) || nodlopen)

package opencl

import "fmt"

// load fails: this build cannot load shared libraries (a static build with
// -tags nodlopen, or a system purego does not support).
func load(string) (*api, error) {
	return nil, fmt.Errorf("%w: this build cannot load shared libraries (static, -tags nodlopen)", ErrUnavailable)
}
