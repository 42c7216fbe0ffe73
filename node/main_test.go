package node

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the package if any test leaves a goroutine behind: every
// goroutine here has an owner with Close (STYLE.md).
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}
