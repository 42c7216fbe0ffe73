package store

import (
	"bufio"
	"context"
	"encoding/hex"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/imece/imece/ledger"
)

// crashDirEnv, when set, makes the test binary a crash-test child: it appends
// to the store in that directory until it is killed.
const crashDirEnv = "IMECE_STORE_CRASH_DIR"

// crashOwners are the chains the child appends to, one goroutine each.
var crashOwners = []string{"crash-a", "crash-b"}

// crashChild runs the child's loop when the environment asks for it. It
// prints "owner seq id" for each block only after Append returned: what the
// node would acknowledge to a peer.
func crashChild() bool {
	dir := os.Getenv(crashDirEnv)
	if dir == "" {
		return false
	}
	s, err := Open(dir)
	if err != nil {
		fmt.Fprintln(os.Stderr, "child open:", err)
		os.Exit(2)
	}
	var mu sync.Mutex
	for _, name := range crashOwners {
		go func() {
			priv := testKey(name)
			for i := 0; ; i++ {
				b, err := s.Append(priv, ledger.KindSpend, spendBody(testKey("crash-server"), uint64(i)))
				if err != nil {
					fmt.Fprintln(os.Stderr, "child append:", err)
					os.Exit(3)
				}
				mu.Lock()
				fmt.Fprintf(os.Stdout, "%s %d %s\n", name, b.Seq, hex.EncodeToString(func() []byte { id := b.ID(); return id[:] }()))
				mu.Unlock()
			}
		}()
	}
	select {}
}

// TestCrashSafety kills a process appending blocks at random moments and
// checks after each kill that the store opens, verifies, and holds every block
// the process acknowledged (DESIGN.md §5: sync writes, one transaction per
// block).
func TestCrashSafety(t *testing.T) {
	if testing.Short() {
		t.Skip("spawns processes")
	}
	dir := t.TempDir()
	acked := map[string]map[uint64]string{}
	for _, name := range crashOwners {
		acked[name] = map[uint64]string{}
	}
	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 7))
	for round := range 5 {
		cmd := exec.Command(os.Args[0], "-test.run=^$")
		cmd.Env = append(os.Environ(), crashDirEnv+"="+dir)
		var stderr strings.Builder
		cmd.Stderr = &stderr
		out, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		// The kill comes a random time after the first acknowledgement; the
		// pipe still holds every line printed before it.
		delay := time.Duration(20+rng.IntN(400)) * time.Millisecond
		var killed *time.Timer
		lines := bufio.NewScanner(out)
		for lines.Scan() {
			if killed == nil {
				killed = time.AfterFunc(delay, func() { cmd.Process.Signal(syscall.SIGKILL) })
			}
			f := strings.Fields(lines.Text())
			if len(f) != 3 || len(f[2]) != 64 {
				continue // the kill cut the line: not acknowledged
			}
			seq, err := strconv.ParseUint(f[1], 10, 64)
			if err != nil || acked[f[0]] == nil {
				t.Fatalf("round %d: child printed %q", round, lines.Text())
			}
			acked[f[0]][seq] = f[2]
		}
		if killed == nil {
			cmd.Process.Kill()
			cmd.Wait()
			t.Fatalf("round %d: child printed nothing: %s", round, stderr.String())
		}
		killed.Stop()
		cmd.Wait()
		if cmd.ProcessState.Success() {
			t.Fatalf("round %d: child exited by itself: %s", round, stderr.String())
		}
		if stderr.Len() > 0 {
			t.Fatalf("round %d: child failed: %s", round, stderr.String())
		}

		// What `imece ledger verify` does to a crashed node's directory,
		// then what the restarted node does.
		if _, err := VerifyDir(context.Background(), dir); err != nil {
			t.Fatalf("round %d: verify after SIGKILL: %v", round, err)
		}
		s, err := Open(dir)
		if err != nil {
			t.Fatalf("round %d: reopen after SIGKILL: %v", round, err)
		}
		r, err := s.Verify(context.Background())
		if err != nil {
			s.Close()
			t.Fatalf("round %d: verify after SIGKILL: %v", round, err)
		}
		for _, name := range crashOwners {
			owner := pub(testKey(name))
			h, err := s.Head(owner)
			if err != nil {
				t.Fatalf("round %d: head of %s: %v", round, name, err)
			}
			for seq, id := range acked[name] {
				b, err := s.Get(owner, seq)
				if err != nil {
					t.Fatalf("round %d: acknowledged block %d of %s lost: %v", round, seq, name, err)
				}
				if got := b.ID(); hex.EncodeToString(got[:]) != id {
					t.Fatalf("round %d: acknowledged block %d of %s is now %s, was %s", round, seq, name, got, id)
				}
			}
			t.Logf("round %d after %v: %s head %d, %d acknowledged; store %d blocks", round, delay, name, h.Seq, len(acked[name]), r.Blocks)
		}
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
	}
}
