package dht

import (
	"errors"
	"fmt"
	"maps"
	"slices"
	"time"

	"github.com/ipfs/go-cid"
	"github.com/libp2p/go-libp2p/core/peer"
)

// Errors of the coverage bookkeeping: why a verified record was not taken.
var (
	// ErrStale: a record of the same peer with a higher sequence was seen.
	ErrStale = errors.New("dht: stale node record")
	// ErrNotServing: the record does not serve the watched model (and says
	// nothing about a peer we know serves it).
	ErrNotServing = errors.New("dht: node record does not serve the model")
	// ErrLayerMismatch: the record's layer count for the model is not the
	// model's.
	ErrLayerMismatch = errors.New("dht: layer count does not match the model")
)

// Snapshot is the network's coverage of one model at one moment, as one node
// sees it. It is immutable: the maps and slices are never modified after it is
// made, and callers must not modify them either.
type Snapshot struct {
	// Model is the watched model.
	Model cid.Cid
	// Layers is the model's layer count: the one given to Watch, or else the one
	// most records agree on (0 while no node serves the model).
	Layers int
	// Records holds the live record of every node serving Model with Layers
	// layers, by peer.
	Records map[peer.ID]*Record
	// Serving[i] lists the nodes serving layer i, ordered by peer ID.
	Serving [][]Server
	// Version increases with every change, so that two snapshots can be compared.
	Version uint64
	// Refreshed is when the last DHT query of the model completed; zero until the
	// first one has.
	Refreshed time.Time
}

// Server is one node serving a layer, with what a route planner needs to cost it.
type Server struct {
	Peer peer.ID
	// First and Last bound the node's whole span [First, Last).
	First, Last int
	// Throughput is the node's announced rate in layer-positions per second.
	Throughput uint64
	// Load is the node's load in permille; FreeSlots its free session slots.
	Load      uint16
	FreeSlots uint32
}

// Rate is how many token positions per second, in thousandths, the node moves
// through each layer of its span: Throughput spread over the span, since a node
// evaluates all of its layers for every position.
func (s Server) Rate() uint64 {
	return s.Throughput * 1000 / uint64(s.Last-s.First)
}

// Covered reports whether every layer has at least one server: whether a chain
// through the model exists at all.
func (s Snapshot) Covered() bool {
	if s.Layers == 0 {
		return false
	}
	for _, srv := range s.Serving {
		if len(srv) == 0 {
			return false
		}
	}
	return true
}

// Capacity is the sum of Rate over the servers of each of totalLayers layers:
// the network's positions per second (in thousandths) at that layer. Records
// announcing a different layer count do not count.
func (s Snapshot) Capacity(totalLayers int) []uint64 {
	c := make([]uint64, max(totalLayers, 0))
	for _, r := range s.Records {
		m, ok := r.Serving(s.Model)
		if !ok || int(m.Layers) != totalLayers {
			continue
		}
		rate := serverOf(r, m).Rate()
		for i := m.First; i < m.Last; i++ {
			c[i] += rate
		}
	}
	return c
}

// Without returns the snapshot as it would be without peer p, for a node that
// chooses its own range and must not count itself.
func (s Snapshot) Without(p peer.ID) Snapshot {
	if _, ok := s.Records[p]; !ok {
		return s
	}
	recs := maps.Clone(s.Records)
	delete(recs, p)
	return newSnapshot(s.Model, s.Layers, recs, s.Version, s.Refreshed)
}

func serverOf(r *Record, m ServedModel) Server {
	return Server{
		Peer: r.Peer, First: int(m.First), Last: int(m.Last),
		Throughput: m.Throughput, Load: r.Load, FreeSlots: r.FreeSlots,
	}
}

// newSnapshot builds the per-layer index. With layers 0 it takes the layer count
// most records agree on (the smaller on a tie) and leaves out the others, so a
// few lying records cannot distort the index.
func newSnapshot(model cid.Cid, layers int, recs map[peer.ID]*Record, version uint64, refreshed time.Time) Snapshot {
	if layers == 0 {
		votes := map[int]int{}
		for _, r := range recs {
			m, _ := r.Serving(model)
			votes[int(m.Layers)]++
		}
		best := 0
		for l, n := range votes {
			if n > best || (n == best && l < layers) {
				layers, best = l, n
			}
		}
	}
	s := Snapshot{Model: model, Layers: layers, Records: map[peer.ID]*Record{}, Version: version, Refreshed: refreshed}
	s.Serving = make([][]Server, layers)
	ids := slices.Sorted(maps.Keys(recs))
	for _, p := range ids {
		r := recs[p]
		m, ok := r.Serving(model)
		if !ok || int(m.Layers) != layers {
			continue
		}
		s.Records[p] = r
		for i := m.First; i < m.Last; i++ {
			s.Serving[i] = append(s.Serving[i], serverOf(r, m))
		}
	}
	return s
}

// view is the bookkeeping behind a Coverage: the live records of one model and
// the highest sequence seen per peer. It does no I/O and keeps no clock; the
// caller passes the time, so it is tested without a network.
type view struct {
	model  cid.Cid
	layers int // 0: unknown
	// records are the live records serving the model.
	records map[peer.ID]*Record
	// seen is the highest sequence seen per peer and when that record expires;
	// it outlives records so a replayed older record is refused after a leave.
	seen      map[peer.ID]seenRecord
	version   uint64
	refreshed time.Time
}

type seenRecord struct {
	seq     uint64
	expires int64
}

func newView(model cid.Cid, layers int) *view {
	return &view{model: model, layers: layers, records: map[peer.ID]*Record{}, seen: map[peer.ID]seenRecord{}}
}

// admissible reports why a verified record would not change the view, without
// changing it: the gossip validator uses it to decide what to relay.
func (v *view) admissible(r *Record, now time.Time) error {
	if s, ok := v.seen[r.Peer]; ok && r.Seq < s.seq {
		return fmt.Errorf("%w: sequence %d after %d", ErrStale, r.Seq, s.seq)
	}
	m, ok := r.Serving(v.model)
	if !ok && !r.Withdrawn {
		// A record that no longer lists the model is news only about a peer we
		// know serves it: it is that peer leaving.
		if _, known := v.records[r.Peer]; !known {
			return ErrNotServing
		}
	}
	if ok && v.layers != 0 && int(m.Layers) != v.layers {
		return fmt.Errorf("%w: %d, not %d", ErrLayerMismatch, m.Layers, v.layers)
	}
	if !now.Before(r.ExpiresAt()) {
		return ErrExpired
	}
	return nil
}

// apply takes a verified record and reports whether the view changed. A newer
// record replaces the peer's previous one; a withdrawn one, or one that no
// longer serves the model, removes the peer.
func (v *view) apply(r *Record, now time.Time) (bool, error) {
	if err := v.admissible(r, now); err != nil {
		return false, err
	}
	if s, ok := v.seen[r.Peer]; ok && r.Seq == s.seq {
		return false, nil // the same record again, by another path
	}
	v.seen[r.Peer] = seenRecord{seq: r.Seq, expires: r.Expires}
	if _, ok := r.Serving(v.model); ok {
		v.records[r.Peer] = r
	} else {
		if _, ok := v.records[r.Peer]; !ok {
			return false, nil
		}
		delete(v.records, r.Peer)
	}
	v.version++
	return true, nil
}

// drop removes p, found unreachable, until a record newer than the one held
// arrives.
func (v *view) drop(p peer.ID) bool {
	if _, ok := v.records[p]; !ok {
		return false
	}
	delete(v.records, p)
	v.version++
	return true
}

// expire removes records whose expiry has passed and forgets sequences of
// records long gone (after skew, when a replay would be refused as expired
// anyway). It returns whether the view changed and the next expiry to wake up
// for (zero if none).
func (v *view) expire(now time.Time, skew time.Duration) (changed bool, next time.Time) {
	for p, r := range v.records {
		if !now.Before(r.ExpiresAt()) {
			delete(v.records, p)
			changed = true
			continue
		}
		if next.IsZero() || r.ExpiresAt().Before(next) {
			next = r.ExpiresAt()
		}
	}
	for p, s := range v.seen {
		if _, live := v.records[p]; !live && now.After(time.Unix(s.expires, 0).Add(skew)) {
			delete(v.seen, p)
		}
	}
	if changed {
		v.version++
	}
	return changed, next
}

// has reports whether p has a live record, so a DHT refresh can skip it.
func (v *view) has(p peer.ID) bool {
	_, ok := v.records[p]
	return ok
}

func (v *view) snapshot() Snapshot {
	return newSnapshot(v.model, v.layers, v.records, v.version, v.refreshed)
}
