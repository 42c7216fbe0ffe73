package dht_test

import (
	"context"
	"log/slog"
	"time"

	"github.com/imece/imece/dht"
	"github.com/imece/imece/pipeline/model"
	"github.com/ipfs/go-cid"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/peer"
)

// A volunteer serving layers [first, last) of a model: start discovery on the
// node's host, join the network, announce, and withdraw on the way out.
func ExampleDiscovery_Announce() {
	var (
		h           host.Host       // built by node/
		bootstrap   []peer.AddrInfo // from --bootstrap
		mf          *model.Manifest // of the loaded model
		first, last                 = 0, 11
		throughput  uint64          = 2400 // layer-positions per second, from node/hardware
	)
	ctx := context.Background()
	d, err := dht.New(h, dht.WithMode(dht.ModeServer), dht.WithBootstrapPeers(bootstrap...), dht.WithLogger(slog.Default()))
	if err != nil {
		return
	}
	defer d.Close()
	if err := d.Bootstrap(ctx); err != nil {
		return
	}
	var layers []cid.Cid
	for i := first; i < last; i++ {
		c, err := mf.LayerCID(i)
		if err != nil {
			return
		}
		layers = append(layers, c)
	}
	rec := dht.Record{
		Models: []dht.ServedModel{{
			Model: mf.CID(), Layers: uint32(mf.Config.Layers), First: uint32(first), Last: uint32(last),
			Throughput: throughput, Activations: dht.ActivationsF32 | dht.ActivationsF16,
		}},
		Tier: 3, Multiplier: 1000, FreeSlots: 8,
	}
	// ErrAnnounceIncomplete (e.g. the network's first node) is not fatal.
	_ = d.Announce(ctx, rec, map[cid.Cid][]cid.Cid{mf.CID(): layers})

	// As sessions come and go:
	_ = d.UpdateRecord(func(r *dht.Record) { r.FreeSlots, r.Load = 5, 375 })

	// On shutdown:
	wctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	_ = d.Withdraw(wctx)
}

// A client waiting until some chain of nodes covers a model, then planning on
// the snapshot; and a node choosing its range with --layers auto.
func ExampleDiscovery_Watch() {
	var (
		d        *dht.Discovery // started as above, ModeClient for a light client
		modelCID cid.Cid        // from --model-cid
	)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cov, err := d.Watch(ctx, modelCID, 0) // 0: layer count not known yet
	if err != nil {
		return
	}
	defer cov.Close()
	snap, err := cov.WaitFor(ctx, dht.Snapshot.Covered)
	if err != nil {
		return // no chain: fall back to the configured endpoint
	}
	for i, servers := range snap.Serving {
		_, _ = i, servers // per layer: peer, span, Throughput, Rate(), Load
	}

	// --layers auto, for a node whose memory holds 8 layers:
	first, last := dht.ChooseLayers(snap, snap.Layers, 8)
	_, _ = first, last
}
