package testnet

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"
)

// The docker compose testnet (docker-compose.yml, docker/): the same cooperative
// as the process tests, each node in its own container on a private network, from
// the FROM scratch image that docker/build.sh makes.

// composeImage is the tag docker/build.sh gives the image and the compose file
// uses by default: the test rebuilds the one a person would run.
const composeImage = "imece:local"

// volunteerServices are the compose file's volunteers by the span they serve.
var volunteerServices = map[string]string{"vol-a1": "[0, 3)", "vol-a2": "[0, 3)", "vol-b1": "[3, 5)", "vol-b2": "[3, 5)"}

// compose runs docker compose (the plugin) or docker-compose (v1) on one project.
type compose struct {
	cmd     []string // "docker", "compose" or "docker-compose"
	project string
	file    string
}

// run runs one command with a deadline and returns its stdout; the error carries
// stderr, so a failure says what docker said.
func run(ctx context.Context, timeout time.Duration, env []string, name string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Env = append(os.Environ(), env...)
	cmd.WaitDelay = 5 * time.Second
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		return out.String(), fmt.Errorf("%s %s: %w\n%s", name, strings.Join(args, " "), err, errb.String())
	}
	return out.String(), nil
}

func (c compose) run(timeout time.Duration, args ...string) (string, error) {
	all := append(append(append([]string{}, c.cmd[1:]...), "-p", c.project, "-f", c.file), args...)
	return run(context.Background(), timeout, []string{"IMECE_IMAGE=" + composeImage}, c.cmd[0], all...)
}

// container returns the ID of a service's container.
func (c compose) container(t *testing.T, service string) string {
	t.Helper()
	out, err := c.run(30*time.Second, "ps", "-q", service)
	id := strings.TrimSpace(out)
	if err != nil || id == "" || strings.Contains(id, "\n") {
		t.Fatalf("container of %s: %q, %v", service, id, err)
	}
	return id
}

// dockerCompose finds a Docker engine that answers and a compose tool, or skips
// the test saying what is missing.
func dockerCompose(t *testing.T) compose {
	t.Helper()
	if testing.Short() {
		t.Skip("builds an image and runs containers; skipped with -short")
	}
	for _, tool := range []string{"docker", "bash"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("no %s on PATH: the docker compose testnet needs Docker and bash", tool)
		}
	}
	ctx := context.Background()
	if _, err := run(ctx, 20*time.Second, nil, "docker", "version", "--format", "{{.Server.Version}}"); err != nil {
		t.Skipf("no Docker engine answers: %v", err)
	}
	file, err := filepath.Abs("docker-compose.yml")
	if err != nil {
		t.Fatal(err)
	}
	// The same project name never repeats, so a run never meets a previous
	// one's leftovers and two runs on one engine do not meet each other.
	project := fmt.Sprintf("imecetest%d%d", os.Getpid(), time.Now().UnixNano()%1e6)
	if _, err := run(ctx, 20*time.Second, nil, "docker", "compose", "version"); err == nil {
		return compose{cmd: []string{"docker", "compose"}, project: project, file: file}
	}
	if _, err := exec.LookPath("docker-compose"); err == nil {
		return compose{cmd: []string{"docker-compose"}, project: project, file: file}
	}
	t.Skip("a Docker engine answers but there is neither the docker compose plugin nor docker-compose")
	return compose{}
}

// up builds the image, starts the project's services and tears everything down
// when the test ends, failed or not, checking nothing is left behind.
func (c compose) up(t *testing.T, services ...string) {
	t.Helper()
	start := time.Now()
	out, err := run(context.Background(), 5*time.Minute, nil, "bash", "docker/build.sh", composeImage)
	if err != nil {
		t.Fatalf("docker/build.sh: %v", err)
	}
	t.Logf("%s in %v", strings.TrimSpace(out), time.Since(start).Round(time.Millisecond))
	t.Cleanup(func() {
		if t.Failed() {
			logs, _ := c.run(30*time.Second, "logs", "--no-color")
			t.Logf("compose logs:\n%s", logs)
		}
		if _, err := c.run(2*time.Minute, "down", "-v", "--remove-orphans", "--timeout", "2"); err != nil {
			t.Errorf("compose down: %v", err)
		}
		label := "label=com.docker.compose.project=" + c.project
		left, err := run(context.Background(), 30*time.Second, nil, "docker", "ps", "-aq", "--filter", label)
		if err != nil || strings.TrimSpace(left) != "" {
			t.Errorf("containers left after compose down: %q %v", left, err)
		}
		left, err = run(context.Background(), 30*time.Second, nil, "docker", "network", "ls", "-q", "--filter", label)
		if err != nil || strings.TrimSpace(left) != "" {
			t.Errorf("networks left after compose down: %q %v", left, err)
		}
	})
	if _, err := c.run(2*time.Minute, append([]string{"up", "-d", "--no-color"}, services...)...); err != nil {
		t.Fatalf("compose up: %v", err)
	}
}

// logs follows a container's output, stdout and stderr apart, until it exits.
type logs struct {
	cmd      *exec.Cmd
	cancel   context.CancelFunc
	mu       sync.Mutex
	out, err bytes.Buffer
	done     chan struct{}
	waitErr  error
}

// lockedWriter appends to one of the logs' buffers under its lock.
type lockedWriter struct {
	l *logs
	b *bytes.Buffer
}

func (w lockedWriter) Write(p []byte) (int, error) {
	w.l.mu.Lock()
	defer w.l.mu.Unlock()
	return w.b.Write(p)
}

func follow(t *testing.T, container string, timeout time.Duration) *logs {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	l := &logs{cancel: cancel, done: make(chan struct{})}
	l.cmd = exec.CommandContext(ctx, "docker", "logs", "--follow", container)
	l.cmd.WaitDelay = 5 * time.Second
	l.cmd.Stdout, l.cmd.Stderr = lockedWriter{l, &l.out}, lockedWriter{l, &l.err}
	if err := l.cmd.Start(); err != nil {
		cancel()
		t.Fatal(err)
	}
	go func() {
		l.waitErr = l.cmd.Wait()
		close(l.done)
	}()
	t.Cleanup(func() {
		l.cancel()
		<-l.done
	})
	return l
}

func (l *logs) text() (stdout, stderr string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.out.String(), l.err.String()
}

// waitStderr waits until the container's stderr matches re.
func (l *logs) waitStderr(t *testing.T, name string, re *regexp.Regexp, timeout time.Duration) []string {
	t.Helper()
	return l.wait(t, name, "stderr", re, timeout)
}

// waitStdout waits until the container's stdout matches re. Docker's log driver
// passes stdout on in whole lines.
func (l *logs) waitStdout(t *testing.T, name string, re *regexp.Regexp, timeout time.Duration) []string {
	t.Helper()
	return l.wait(t, name, "stdout", re, timeout)
}

func (l *logs) wait(t *testing.T, name, stream string, re *regexp.Regexp, timeout time.Duration) []string {
	t.Helper()
	match := func() ([]string, string) {
		out, errText := l.text()
		if stream == "stdout" {
			return re.FindStringSubmatch(out), out
		}
		return re.FindStringSubmatch(errText), errText
	}
	deadline := time.After(timeout)
	for {
		if m, _ := match(); m != nil {
			return m
		}
		select {
		case <-l.done:
			m, text := match()
			if m != nil {
				return m
			}
			_, errText := l.text()
			t.Fatalf("%s ended without %q on %s: %q\nstderr:\n%s", name, re, stream, text, errText)
		case <-deadline:
			_, errText := l.text()
			t.Fatalf("%s: no %q on %s in %v\nstderr:\n%s", name, re, stream, timeout, errText)
		case <-time.After(20 * time.Millisecond):
		}
	}
}

var peerLine = regexp.MustCompile(`/p2p/(12D3\w+)`)

// TestDockerComposeVolunteerKilled: the compose network generates the reference
// text through containers; the volunteer on the client's chain is killed
// (docker kill, SIGKILL) mid-generation, the client re-plans around it, and the
// text is still exact.
func TestDockerComposeVolunteerKilled(t *testing.T) {
	c := dockerCompose(t)
	begin := time.Now()
	c.up(t, "boot", "vol-a1", "vol-a2", "vol-b1", "vol-b2")

	// Each volunteer prints its multiaddrs (peer ID included) on stdout and
	// says it serves once its stage is up.
	byPeer := map[string]string{} // last 8 characters of the peer ID → service
	containers := map[string]string{}
	for service, span := range volunteerServices {
		id := c.container(t, service)
		containers[service] = id
		l := follow(t, id, 30*time.Second)
		l.waitStderr(t, service, regexp.MustCompile(`imece: serving layers `+regexp.QuoteMeta(span)), 30*time.Second)
		out, _ := l.text()
		m := peerLine.FindStringSubmatch(out)
		if m == nil {
			t.Fatalf("%s printed no multiaddr: %q", service, out)
		}
		byPeer[m[1][len(m[1])-8:]] = service
	}
	t.Logf("volunteers serving %v after start", time.Since(begin).Round(time.Millisecond))

	if _, err := c.run(time.Minute, "up", "-d", "--no-deps", "--no-color", "client"); err != nil {
		t.Fatalf("compose up client: %v", err)
	}
	clientID := c.container(t, "client")
	client := follow(t, clientID, 2*time.Minute)
	m := client.waitStderr(t, "client", regexp.MustCompile(`route="[^"]*…(\w{8})\[3, 5\)`), 90*time.Second)
	victim := byPeer[m[1]]
	if victim == "" {
		t.Fatalf("the route names %s, not a volunteer of this network (%v)", m[1], byPeer)
	}
	// The kill lands mid-generation: after the text's first line (token 40 of
	// 124, at the client's 40 ms pace) and before the client says it is done.
	first := reference[:strings.Index(reference, "\n")+1]
	client.waitStdout(t, "client", regexp.MustCompile(regexp.QuoteMeta(first)), time.Minute)
	if _, errText := client.text(); strings.Contains(errText, "msg=generated") {
		t.Fatalf("the client finished before the kill:\n%s", errText)
	}
	if _, err := run(context.Background(), 30*time.Second, nil, "docker", "kill", containers[victim]); err != nil {
		t.Fatalf("docker kill %s: %v", victim, err)
	}
	killedAt, _ := client.text()
	t.Logf("killed %s (…%s, on the route) after %d bytes of text", victim, m[1], len(killedAt))

	code, err := run(context.Background(), 2*time.Minute, nil, "docker", "wait", clientID)
	if err != nil {
		t.Fatalf("docker wait client: %v", err)
	}
	select {
	case <-client.done:
	case <-time.After(30 * time.Second):
		t.Fatal("docker logs --follow did not end after the client exited")
	}
	out, errText := client.text()
	if strings.TrimSpace(code) != "0" {
		t.Fatalf("client exited with %s:\n%s", strings.TrimSpace(code), errText)
	}
	if out != reference+"\n" {
		t.Fatalf("after the kill got %q\nstderr:\n%s", out, errText)
	}
	replanned := regexp.MustCompile(`re-planning.*peer=12D3\w*` + m[1])
	if !replanned.MatchString(errText) {
		t.Fatalf("no failover around %s happened:\n%s", victim, errText)
	}
	t.Logf("text exact after the kill; %v from build to the end of generation", time.Since(begin).Round(time.Millisecond))
}
