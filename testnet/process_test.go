package testnet

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/imece/imece/assets"
	"github.com/imece/imece/pipeline/model"
)

// These tests run the real binary: separate `imece node` processes on loopback and
// an `imece generate` light client, as a person would on several machines.

var buildOnce = sync.OnceValues(func() (string, error) {
	dir, err := os.MkdirTemp("", "imece-bin-")
	if err != nil {
		return "", err
	}
	bin := filepath.Join(dir, "imece")
	out, err := exec.Command("go", "build", "-o", bin, "../cmd/imece").CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("go build: %v\n%s", err, out)
	}
	return bin, nil
})

func imeceBinary(t *testing.T) string {
	t.Helper()
	if testing.Short() {
		t.Skip("builds and runs the binary; skipped with -short")
	}
	bin, err := buildOnce()
	if err != nil {
		t.Fatal(err)
	}
	return bin
}

// proc is a running imece process whose stdout lines and stderr are collected.
type proc struct {
	name   string
	cmd    *exec.Cmd
	lines  chan string
	mu     sync.Mutex
	stderr strings.Builder
	done   chan struct{}
	err    error
}

func start(t *testing.T, name string, args ...string) *proc {
	t.Helper()
	p := &proc{name: name, cmd: exec.Command(imeceBinary(t), args...), lines: make(chan string, 1024), done: make(chan struct{})}
	out, err := p.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	errPipe, err := p.cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	wg.Add(2)
	go func() {
		defer wg.Done()
		defer close(p.lines)
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			p.lines <- sc.Text()
		}
	}()
	go func() {
		defer wg.Done()
		b := make([]byte, 4096)
		for {
			n, err := errPipe.Read(b)
			p.mu.Lock()
			p.stderr.Write(b[:n])
			p.mu.Unlock()
			if err != nil {
				return
			}
		}
	}()
	go func() {
		wg.Wait()
		p.err = p.cmd.Wait()
		close(p.done)
	}()
	t.Cleanup(func() {
		p.cmd.Process.Kill()
		<-p.done
		if t.Failed() {
			t.Logf("%s stderr:\n%s", p.name, p.errText())
		}
	})
	return p
}

func (p *proc) errText() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.stderr.String()
}

// line waits for the next stdout line.
func (p *proc) line(t *testing.T, timeout time.Duration) string {
	t.Helper()
	select {
	case l, ok := <-p.lines:
		if !ok {
			<-p.done
			t.Fatalf("%s exited (%v) before printing a line; stderr:\n%s", p.name, p.err, p.errText())
		}
		return l
	case <-time.After(timeout):
		t.Fatalf("%s printed nothing in %v; stderr:\n%s", p.name, timeout, p.errText())
	}
	return ""
}

// waitStderr waits until stderr matches re and returns the match.
func (p *proc) waitStderr(t *testing.T, re *regexp.Regexp, timeout time.Duration) []string {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		if m := re.FindStringSubmatch(p.errText()); m != nil {
			return m
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("%s: no %q on stderr in %v:\n%s", p.name, re, timeout, p.errText())
	return nil
}

func modelPath(t *testing.T) string {
	p, err := filepath.Abs("../assets/stories260K.gguf")
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func modelCID(t *testing.T) string {
	m, err := model.FromGGUF(assets.DefaultModel)
	if err != nil {
		t.Fatal(err)
	}
	id, err := m.CID()
	if err != nil {
		t.Fatal(err)
	}
	return id.String()
}

var quiet = []string{"--listen", "/ip4/127.0.0.1/tcp/0", "--mdns=false", "--nat=false"}

// startNode starts `imece node` and returns it with the multiaddr it printed.
func startNode(t *testing.T, name string, args ...string) (*proc, string) {
	t.Helper()
	p := start(t, name, append(append([]string{"node", "--data", filepath.Join(t.TempDir(), name)}, quiet...), args...)...)
	addr := p.line(t, 30*time.Second)
	if !strings.Contains(addr, "/p2p/12D3") {
		t.Fatalf("%s printed %q, not a multiaddr", name, addr)
	}
	p.waitStderr(t, regexp.MustCompile(`imece: (serving|bootstrap)`), 30*time.Second)
	return p, addr
}

// runGenerate runs the light client to completion and returns stdout and stderr.
func runGenerate(t *testing.T, boot string, extra ...string) (string, string) {
	t.Helper()
	args := append([]string{"generate", "--data", filepath.Join(t.TempDir(), "client"), "--bootstrap", boot,
		"--model-cid", modelCID(t), "--prompt", "Once upon a time", "--max-tokens", "124", "--temperature", "0",
		"--log-level", "info"}, extra...)
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, imeceBinary(t), args...)
	var out, errb strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		t.Fatalf("imece generate: %v\n%s", err, errb.String())
	}
	return out.String(), errb.String()
}

// TestProcesses: a bootstrap node and three volunteers as separate processes; a
// light client generates the reference text through them; a volunteer given
// SIGTERM leaves cleanly.
func TestProcesses(t *testing.T) {
	_, boot := startNode(t, "boot")
	var vols []*proc
	for i, r := range []string{"0:2", "2:4", "4:5"} {
		v, _ := startNode(t, fmt.Sprintf("vol%d", i+1), "--bootstrap", boot, "--model", modelPath(t), "--layers", r)
		vols = append(vols, v)
	}
	out, _ := runGenerate(t, boot)
	if out != reference+"\n" {
		t.Fatalf("got %q", out)
	}
	v := vols[2]
	v.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-v.done:
	case <-time.After(20 * time.Second):
		t.Fatal("volunteer did not exit after SIGTERM")
	}
	if v.err != nil || !strings.Contains(v.errText(), "leaving the network") {
		t.Fatalf("volunteer exit: %v\n%s", v.err, v.errText())
	}
}

// TestProcessReplicaKilled: two replicas of the middle span; the one the client's
// chain runs through is killed with SIGKILL mid-generation, and the text is
// still exact.
func TestProcessReplicaKilled(t *testing.T) {
	_, boot := startNode(t, "boot")
	startNode(t, "first", "--bootstrap", boot, "--model", modelPath(t), "--layers", "0:2")
	replicas := map[string]*proc{}
	for _, name := range []string{"replicaA", "replicaB"} {
		p, addr := startNode(t, name, "--bootstrap", boot, "--model", modelPath(t), "--layers", "2:4")
		id := addr[strings.LastIndex(addr, "/")+1:]
		replicas[id[len(id)-8:]] = p
	}
	startNode(t, "last", "--bootstrap", boot, "--model", modelPath(t), "--layers", "4:5")

	client := start(t, "client", "generate", "--data", filepath.Join(t.TempDir(), "client"), "--bootstrap", boot,
		"--model-cid", modelCID(t), "--prompt", "Once upon a time", "--max-tokens", "124", "--temperature", "0",
		"--log-level", "info", "--pace", "20ms")
	m := client.waitStderr(t, regexp.MustCompile(`route="[^"]*…([A-Za-z0-9]{8})\[2, 4\)`), 60*time.Second)
	victim := replicas[m[1]]
	if victim == nil {
		t.Fatalf("route names %s, not a replica", m[1])
	}
	time.Sleep(500 * time.Millisecond) // well into the 124 tokens at 20 ms each
	victim.cmd.Process.Kill()
	var out strings.Builder
	for l := range client.lines {
		if out.Len() > 0 {
			out.WriteByte('\n')
		}
		out.WriteString(l)
	}
	<-client.done
	if client.err != nil {
		t.Fatalf("client: %v\n%s", client.err, client.errText())
	}
	if out.String() != reference {
		t.Fatalf("after the kill got %q", out.String())
	}
	if !strings.Contains(client.errText(), "re-planning") {
		t.Fatalf("no failover happened:\n%s", client.errText())
	}
}

// TestProcessBootstrapRestart: the bootstrap node is killed and restarted with the
// same identity and port; the volunteers reconnect and re-announce by themselves,
// and a new client joining through the restarted node finds them.
func TestProcessBootstrapRestart(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "boot")
	bootArgs := func(listen string) []string {
		return []string{"node", "--data", dir, "--listen", listen, "--mdns=false", "--nat=false"}
	}
	b := start(t, "boot", bootArgs("/ip4/127.0.0.1/tcp/0")...)
	boot := b.line(t, 30*time.Second)
	for i, r := range []string{"0:3", "3:5"} {
		startNode(t, fmt.Sprintf("vol%d", i+1), "--bootstrap", boot, "--model", modelPath(t), "--layers", r)
	}
	b.cmd.Process.Kill()
	<-b.done
	listen := boot[:strings.Index(boot, "/p2p/")]
	b2 := start(t, "boot2", bootArgs(listen)...)
	if again := b2.line(t, 30*time.Second); again != boot {
		t.Fatalf("restarted bootstrap prints %q, was %q", again, boot)
	}
	out, _ := runGenerate(t, boot)
	if out != reference+"\n" {
		t.Fatalf("got %q", out)
	}
}
