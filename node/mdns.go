package node

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/p2p/discovery/mdns"
)

// MDNSServiceName is the mDNS service imece nodes advertise and browse for,
// so they find each other on a LAN and not every libp2p program there.
const MDNSServiceName = "_imece._udp"

// lanDialTimeout bounds a dial to a peer found on the LAN, where a live peer
// answers in milliseconds.
const lanDialTimeout = 5 * time.Second

// maxLANDials caps concurrent dials to peers found by mDNS, so a busy LAN (or
// a flood of spoofed announcements) cannot start unbounded goroutines.
const maxLANDials = 8

// LANDiscovery finds imece nodes on the local network by mDNS and connects to
// them, so volunteers on one LAN form a mesh without a bootstrap node. It is
// on by default for volunteers; tests leave it off (it multicasts on every
// interface).
type LANDiscovery struct {
	host   host.Host
	log    *slog.Logger
	svc    mdns.Service
	ctx    context.Context
	cancel context.CancelFunc
	sem    chan struct{}
	wg     sync.WaitGroup
	once   sync.Once
}

// StartLANDiscovery advertises h on the LAN and connects to the imece nodes it
// hears of. A nil log discards messages. The caller must Close it before
// closing h.
func StartLANDiscovery(h host.Host, log *slog.Logger) (*LANDiscovery, error) {
	d := newLANDiscovery(h, log)
	d.svc = mdns.NewMdnsService(h, MDNSServiceName, d)
	if err := d.svc.Start(); err != nil {
		d.cancel()
		return nil, fmt.Errorf("lan discovery: start mDNS: %w", err)
	}
	return d, nil
}

func newLANDiscovery(h host.Host, log *slog.Logger) *LANDiscovery {
	if log == nil {
		log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	ctx, cancel := context.WithCancel(context.Background())
	return &LANDiscovery{host: h, log: log, ctx: ctx, cancel: cancel, sem: make(chan struct{}, maxLANDials)}
}

// HandlePeerFound is called by the mDNS service for every announcement it
// hears; it dials the peer in the background unless already connected.
func (d *LANDiscovery) HandlePeerFound(ai peer.AddrInfo) {
	if ai.ID == d.host.ID() || d.host.Network().Connectedness(ai.ID) == network.Connected {
		return
	}
	select {
	case d.sem <- struct{}{}:
	default:
		d.log.Debug("lan peer skipped: too many dials in flight", "peer", ai.ID)
		return
	}
	d.wg.Add(1)
	go func() {
		defer d.wg.Done()
		defer func() { <-d.sem }()
		ctx, cancel := context.WithTimeout(d.ctx, lanDialTimeout)
		defer cancel()
		if err := d.host.Connect(ctx, ai); err != nil {
			d.log.Debug("lan peer dial failed", "peer", ai.ID, "err", err)
			return
		}
		d.log.Info("lan peer connected", "peer", ai.ID)
	}()
}

// Close stops advertising and browsing and waits for in-flight dials.
func (d *LANDiscovery) Close() error {
	var err error
	d.once.Do(func() {
		if d.svc != nil {
			// mdns waits for its resolver, so no HandlePeerFound runs after this.
			err = d.svc.Close()
		}
		d.cancel()
		d.wg.Wait()
	})
	return err
}
