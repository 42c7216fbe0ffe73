package node

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/control"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"
)

// HelloProtocol is exchanged on every new connection: each side says which
// network it belongs to, so nodes of different networks (another genesis: other
// tiers, factors, allowance) never mix their DHTs and ledgers.
const HelloProtocol = "/imece/hello/1.0.0"

// Network identifies an imece network: its name and the hash of its genesis file.
type Network struct {
	ID      string
	Genesis [32]byte
}

func (n Network) String() string {
	return fmt.Sprintf("%q (genesis %s…)", n.ID, hex.EncodeToString(n.Genesis[:6]))
}

// ErrOtherNetwork means a peer belongs to another network.
var ErrOtherNetwork = errors.New("peer is on another network")

const (
	helloTimeout = 10 * time.Second
	maxNetworkID = 64
)

// gate refuses, at the security handshake, peers already found to be on another
// network, so they cannot reconnect and retry.
type gate struct {
	mu     sync.Mutex
	denied map[peer.ID]error
}

func newGate() *gate { return &gate{denied: map[peer.ID]error{}} }

func (g *gate) deny(p peer.ID, err error) {
	g.mu.Lock()
	g.denied[p] = err
	g.mu.Unlock()
}

// refused returns why p was refused, if it was.
func (g *gate) refused(p peer.ID) error {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.denied[p]
}

func (g *gate) InterceptPeerDial(p peer.ID) bool                 { return g.refused(p) == nil }
func (g *gate) InterceptAddrDial(p peer.ID, _ ma.Multiaddr) bool { return g.refused(p) == nil }
func (g *gate) InterceptAccept(network.ConnMultiaddrs) bool      { return true }
func (g *gate) InterceptSecured(_ network.Direction, p peer.ID, _ network.ConnMultiaddrs) bool {
	return g.refused(p) == nil
}
func (g *gate) InterceptUpgraded(network.Conn) (bool, control.DisconnectReason) { return true, 0 }

// greeter runs the hello exchange on every connection of a host.
type greeter struct {
	h    host.Host
	self Network
	gate *gate
	log  *slog.Logger
	nb   *network.NotifyBundle
	wg   sync.WaitGroup
	done chan struct{}
}

func startGreeter(h host.Host, self Network, g *gate, log *slog.Logger) *greeter {
	gr := &greeter{h: h, self: self, gate: g, log: log, done: make(chan struct{})}
	h.SetStreamHandler(HelloProtocol, gr.answer)
	gr.nb = &network.NotifyBundle{ConnectedF: func(_ network.Network, c network.Conn) {
		if c.Stat().Direction != network.DirOutbound {
			return // the dialler greets; the other side answers
		}
		gr.wg.Add(1)
		go func() {
			defer gr.wg.Done()
			gr.greet(c.RemotePeer())
		}()
	}}
	h.Network().Notify(gr.nb)
	return gr
}

func (gr *greeter) close() {
	gr.h.Network().StopNotify(gr.nb)
	gr.h.RemoveStreamHandler(HelloProtocol)
	close(gr.done)
	gr.wg.Wait()
}

func encodeNetwork(n Network) []byte {
	b := append([]byte{byte(len(n.ID))}, n.ID...)
	return append(b, n.Genesis[:]...)
}

func readNetwork(r io.Reader) (Network, error) {
	var l [1]byte
	if _, err := io.ReadFull(r, l[:]); err != nil {
		return Network{}, err
	}
	if l[0] == 0 || int(l[0]) > maxNetworkID {
		return Network{}, fmt.Errorf("network id of %d bytes", l[0])
	}
	b := make([]byte, int(l[0])+32)
	if _, err := io.ReadFull(r, b); err != nil {
		return Network{}, err
	}
	var n Network
	n.ID = string(b[:l[0]])
	copy(n.Genesis[:], b[l[0]:])
	return n, nil
}

// greet tells an outbound peer our network and checks its answer.
func (gr *greeter) greet(p peer.ID) {
	ctx, cancel := context.WithTimeout(context.Background(), helloTimeout)
	defer cancel()
	go func() {
		select {
		case <-gr.done:
			cancel()
		case <-ctx.Done():
		}
	}()
	if err := gr.hello(ctx, p); err != nil && !errors.Is(err, ErrOtherNetwork) {
		gr.log.Debug("hello not answered", "peer", p, "err", err)
	}
}

// hello exchanges networks with p; it returns an error wrapping ErrOtherNetwork
// when p belongs to another.
func (gr *greeter) hello(ctx context.Context, p peer.ID) error {
	s, err := gr.h.NewStream(ctx, p, HelloProtocol)
	if err != nil {
		return err
	}
	defer s.Close()
	s.SetDeadline(time.Now().Add(helloTimeout))
	if _, err := s.Write(encodeNetwork(gr.self)); err != nil {
		return err
	}
	theirs, err := readNetwork(s)
	if err != nil {
		return fmt.Errorf("bad hello: %w", err)
	}
	return gr.check(p, theirs)
}

// answer replies to a peer's hello with ours, then checks theirs.
func (gr *greeter) answer(s network.Stream) {
	defer s.Close()
	s.SetDeadline(time.Now().Add(helloTimeout))
	theirs, err := readNetwork(s)
	if err != nil {
		s.Reset()
		return
	}
	s.Write(encodeNetwork(gr.self))
	gr.check(s.Conn().RemotePeer(), theirs)
}

// check refuses a peer of another network: it is disconnected and kept away.
func (gr *greeter) check(p peer.ID, theirs Network) error {
	if theirs == gr.self {
		return nil
	}
	err := fmt.Errorf("%w: peer %s is on network %s, this node on %s", ErrOtherNetwork, p, theirs, gr.self)
	gr.log.Warn("refusing a peer of another network", "peer", p, "their_network", theirs.String(), "our_network", gr.self.String())
	gr.gate.deny(p, err)
	// Let the answer reach the other side before the connection goes.
	time.AfterFunc(200*time.Millisecond, func() { gr.h.Network().ClosePeer(p) })
	return err
}
