package node

import (
	"bufio"
	"context"
	"crypto/rand"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"
	rcmgr "github.com/libp2p/go-libp2p/p2p/host/resource-manager"
	manet "github.com/multiformats/go-multiaddr/net"
)

const (
	loopbackTCP  = "/ip4/127.0.0.1/tcp/0"
	loopbackQUIC = "/ip4/127.0.0.1/udp/0/quic-v1"
	echoProtocol = protocol.ID("/imece/test-echo/1.0.0")
)

func newKey(t *testing.T) crypto.PrivKey {
	t.Helper()
	k, _, err := crypto.GenerateEd25519Key(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// newTestHost starts a host on loopback TCP and QUIC without NAT features,
// closed when the test ends.
func newTestHost(t *testing.T, opts ...HostOption) host.Host {
	t.Helper()
	return newTestHostOn(t, []string{loopbackTCP, loopbackQUIC}, opts...)
}

func newTestHostOn(t *testing.T, listen []string, opts ...HostOption) host.Host {
	t.Helper()
	base := []HostOption{WithIdentity(newKey(t)), WithListenAddrs(listen...), WithNATTraversal(false)}
	h, err := NewHost(t.Context(), append(base, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.Close() })
	return h
}

func testContext(t *testing.T) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// connect dials b from a, failing the test if it cannot.
func connect(ctx context.Context, t *testing.T, a, b host.Host) {
	t.Helper()
	if err := a.Connect(ctx, peer.AddrInfo{ID: b.ID(), Addrs: b.Addrs()}); err != nil {
		t.Fatalf("connect %s → %s: %v", a.ID(), b.ID(), err)
	}
}

// openEcho connects a to b, serves echo on b and opens a stream to it, reset
// when the test ends.
func openEcho(ctx context.Context, t *testing.T, a, b host.Host) network.Stream {
	t.Helper()
	b.SetStreamHandler(echoProtocol, echo)
	connect(ctx, t, a, b)
	s, err := a.NewStream(ctx, b.ID(), echoProtocol)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Reset() })
	return s
}

func echo(s network.Stream) {
	defer s.Close()
	_, _ = io.Copy(s, s)
}

// roundTrip opens an echo stream from a to b and checks a line comes back.
func roundTrip(ctx context.Context, t *testing.T, a, b host.Host) {
	t.Helper()
	s, err := a.NewStream(ctx, b.ID(), echoProtocol)
	if err != nil {
		t.Fatalf("open stream %s → %s: %v", a.ID(), b.ID(), err)
	}
	defer s.Close()
	if dl, ok := ctx.Deadline(); ok {
		_ = s.SetDeadline(dl)
	}
	const msg = "activations\n"
	if _, err := io.WriteString(s, msg); err != nil {
		t.Fatal(err)
	}
	got, err := bufio.NewReader(s).ReadString('\n')
	if err != nil || got != msg {
		t.Fatalf("echo got %q, %v", got, err)
	}
}

func TestHostsConnectAndStream(t *testing.T) {
	for _, tt := range []struct {
		name, listen, proto string
	}{
		{"tcp", loopbackTCP, "tcp"},
		{"quic", loopbackQUIC, "quic-v1"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			ctx := testContext(t)
			hosts := make([]host.Host, 3)
			for i := range hosts {
				hosts[i] = newTestHostOn(t, []string{tt.listen})
				hosts[i].SetStreamHandler(echoProtocol, echo)
			}
			for i, a := range hosts {
				b := hosts[(i+1)%len(hosts)]
				connect(ctx, t, a, b)
				roundTrip(ctx, t, a, b)
				for _, c := range a.Network().ConnsToPeer(b.ID()) {
					if !strings.Contains(c.RemoteMultiaddr().String(), tt.proto) {
						t.Errorf("connection over %s, want %s", c.RemoteMultiaddr(), tt.proto)
					}
				}
			}
		})
	}
}

func TestHostOptionsValidated(t *testing.T) {
	ctx := t.Context()
	secp, _, err := crypto.GenerateKeyPair(crypto.Secp256k1, 0)
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		name string
		opts []HostOption
	}{
		{"no identity", nil},
		{"secp256k1 identity", []HostOption{WithIdentity(secp)}},
		{"bad listen address", []HostOption{WithIdentity(newKey(t)), WithListenAddrs("/ip4/not-an-ip/tcp/0")}},
		{"low above high", []HostOption{WithIdentity(newKey(t)), WithConnLimits(10, 5, time.Second)}},
		{"nil logger", []HostOption{WithIdentity(newKey(t)), WithLogger(nil)}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if h, err := NewHost(ctx, tt.opts...); err == nil {
				h.Close()
				t.Fatal("NewHost accepted invalid options")
			} else {
				t.Logf("error shown: %v", err)
			}
		})
	}
}

// TestResourceLimitsApplied reads the limits back from the host's resource
// manager: the numbers limits.go documents are the ones in force.
func TestResourceLimitsApplied(t *testing.T) {
	ctx := testContext(t)
	a, b := newTestHost(t), newTestHost(t)
	s := openEcho(ctx, t, a, b)

	limitOf := func(scope network.ResourceScope) rcmgr.Limit {
		t.Helper()
		l, ok := scope.(rcmgr.ResourceScopeLimiter)
		if !ok {
			t.Fatalf("scope %T exposes no limit", scope)
		}
		return l.Limit()
	}
	rm := a.Network().ResourceManager()
	check := func(name string, view func(func(network.ResourceScope) error) error, memory int64, in, out int) {
		t.Helper()
		err := view(func(scope network.ResourceScope) error {
			l := limitOf(scope)
			if got := l.GetMemoryLimit(); got != memory {
				t.Errorf("%s memory limit %d, want %d", name, got, memory)
			}
			if in > 0 {
				if got := l.GetStreamLimit(network.DirInbound); got != in {
					t.Errorf("%s inbound stream limit %d, want %d", name, got, in)
				}
				if got := l.GetStreamLimit(network.DirOutbound); got != out {
					t.Errorf("%s outbound stream limit %d, want %d", name, got, out)
				}
			}
			return nil
		})
		if err != nil {
			t.Fatalf("view %s: %v", name, err)
		}
	}
	check("system", rm.ViewSystem, SystemMemory, 32*SessionBudget, 32*SessionBudget)
	check("peer", func(f func(network.ResourceScope) error) error {
		return rm.ViewPeer(b.ID(), func(s network.PeerScope) error { return f(s) })
	}, SystemMemory/2, 8*SessionBudget, 8*SessionBudget)
	check("protocol", func(f func(network.ResourceScope) error) error {
		return rm.ViewProtocol(echoProtocol, func(s network.ProtocolScope) error { return f(s) })
	}, SystemMemory, 16*SessionBudget, 16*SessionBudget)
	if got := limitOf(s.Scope()).GetMemoryLimit(); got != 2*FrameBudget {
		t.Errorf("stream memory limit %d, want %d", got, 2*FrameBudget)
	}
	// A full-size activation frame fits in one stream's reservation.
	if err := s.Scope().ReserveMemory(FrameBudget, network.ReservationPriorityAlways); err != nil {
		t.Fatalf("reserve a %d-byte frame on a stream: %v", FrameBudget, err)
	}
	s.Scope().ReleaseMemory(FrameBudget)
	if got, ok := rm.(interface{ GetConnLimit() int }); !ok || got.GetConnLimit() < DefaultConnHigh {
		t.Errorf("system connection limit below the connection manager's high watermark %d", DefaultConnHigh)
	}
}

func TestCustomResourceLimits(t *testing.T) {
	ctx := testContext(t)
	small := rcmgr.PartialLimitConfig{
		Stream: rcmgr.ResourceLimits{Memory: 1 << 20},
	}.Build(DefaultResourceLimits())
	a, b := newTestHost(t, WithResourceLimits(small)), newTestHost(t)
	s := openEcho(ctx, t, a, b)
	if got := s.Scope().(rcmgr.ResourceScopeLimiter).Limit().GetMemoryLimit(); got != 1<<20 {
		t.Errorf("stream memory limit %d, want %d", got, 1<<20)
	}
	if err := s.Scope().ReserveMemory(FrameBudget, network.ReservationPriorityAlways); err == nil {
		t.Error("a full frame fit in a 1 MiB stream budget")
	}
}

func TestFullAddrs(t *testing.T) {
	h := newTestHost(t)
	addrs := FullAddrs(h)
	if len(addrs) < 2 {
		t.Fatalf("FullAddrs = %v, want the TCP and QUIC loopback addresses", addrs)
	}
	var tcp, quic bool
	for _, a := range addrs {
		ai, err := peer.AddrInfoFromP2pAddr(a)
		if err != nil {
			t.Fatalf("%s: %v", a, err)
		}
		if ai.ID != h.ID() {
			t.Errorf("%s names peer %s, want %s", a, ai.ID, h.ID())
		}
		if !manet.IsIPLoopback(a) {
			t.Errorf("%s is not loopback, yet the host listens only there", a)
		}
		tcp = tcp || strings.Contains(a.String(), "/tcp/")
		quic = quic || strings.Contains(a.String(), "/quic-v1/")
	}
	if !tcp || !quic {
		t.Errorf("FullAddrs = %v, want both TCP and QUIC", addrs)
	}
	// What FullAddrs prints is what --bootstrap accepts.
	strs := make([]string, len(addrs))
	for i, a := range addrs {
		strs[i] = a.String()
	}
	peers, err := ParseBootstrapAddrs(strs)
	if err != nil || len(peers) != 1 || peers[0].ID != h.ID() || len(peers[0].Addrs) != len(addrs) {
		t.Fatalf("ParseBootstrapAddrs(FullAddrs) = %v, %v", peers, err)
	}
	other := newTestHost(t)
	if err := other.Connect(testContext(t), peers[0]); err != nil {
		t.Fatalf("dial printed addresses: %v", err)
	}
}
