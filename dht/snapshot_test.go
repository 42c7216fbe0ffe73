package dht

import (
	"errors"
	"testing"
	"time"

	"github.com/ipfs/go-cid"
	"github.com/libp2p/go-libp2p/core/peer"
)

// node is a test peer whose records are made on demand.
type node struct {
	t  *testing.T
	id peer.ID
}

func newNode(t *testing.T) node {
	_, id := newKey(t)
	return node{t: t, id: id}
}

// rec is a record (unsigned: the view takes verified records) serving
// [first, last) of an 8-layer model.
func (n node) rec(model cid.Cid, first, last uint32, seq uint64, throughput uint64) *Record {
	r := testRecord(n.t, n.id, model, first, last)
	r.Seq = seq
	r.Models = []ServedModel{{Model: model, Layers: 8, First: first, Last: last, Throughput: throughput}}
	return &r
}

func TestViewJoinLeaveExpire(t *testing.T) {
	model := testCID(t, "m")
	a, b := newNode(t), newNode(t)
	v := newView(model, 8)
	now := testNow

	mustApply := func(r *Record, wantChanged bool, wantErr error) {
		t.Helper()
		changed, err := v.apply(r, now)
		if !errors.Is(err, wantErr) || changed != wantChanged {
			t.Fatalf("apply seq %d: changed %v err %v; want %v %v", r.Seq, changed, err, wantChanged, wantErr)
		}
	}
	mustApply(a.rec(model, 0, 4, 1, 4000), true, nil)
	mustApply(b.rec(model, 4, 8, 1, 2000), true, nil)
	mustApply(a.rec(model, 0, 4, 1, 4000), false, nil) // the same record by another path
	mustApply(a.rec(model, 0, 4, 0, 4000), false, ErrStale)

	s := v.snapshot()
	if !s.Covered() || len(s.Records) != 2 || len(s.Serving[3]) != 1 || s.Serving[3][0].Peer != a.id {
		t.Fatalf("snapshot %+v", s)
	}
	if got := s.Capacity(8); got[0] != 1_000_000 || got[7] != 500_000 {
		t.Fatalf("capacity %v", got)
	}

	// Wrong layer count, other model: not taken.
	wrongL := a.rec(model, 0, 4, 2, 4000)
	wrongL.Models[0].Layers = 9
	mustApply(wrongL, false, ErrLayerMismatch)
	mustApply(newNode(t).rec(testCID(t, "other"), 0, 4, 1, 1), false, ErrNotServing)

	// A withdrawn record removes the peer; the old record cannot come back.
	w := b.rec(model, 4, 8, 2, 2000)
	w.Withdrawn = true
	mustApply(w, true, nil)
	mustApply(b.rec(model, 4, 8, 1, 2000), false, ErrStale)
	if s := v.snapshot(); s.Covered() || len(s.Records) != 1 {
		t.Fatalf("after withdraw: %+v", s)
	}

	// A newer record that stops serving the model is a leave too.
	moved := a.rec(testCID(t, "other"), 0, 4, 5, 1)
	mustApply(moved, true, nil)
	if s := v.snapshot(); len(s.Records) != 0 {
		t.Fatal("peer that moved to another model still listed")
	}

	// Expiry, and dropping an unreachable peer until a newer record arrives.
	c := newNode(t)
	mustApply(c.rec(model, 0, 8, 1, 800), true, nil)
	if !v.drop(c.id) || v.has(c.id) {
		t.Fatal("drop")
	}
	mustApply(c.rec(model, 0, 8, 1, 800), false, nil)
	mustApply(c.rec(model, 0, 8, 2, 800), true, nil)
	r := c.rec(model, 0, 8, 3, 800)
	r.Expires = now.Add(time.Minute).Unix()
	mustApply(r, true, nil)
	if changed, next := v.expire(now.Add(30*time.Second), 0); changed || !next.Equal(r.ExpiresAt()) {
		t.Fatalf("early expire: %v %v", changed, next)
	}
	if changed, _ := v.expire(now.Add(time.Minute), 0); !changed || v.has(c.id) {
		t.Fatal("record outlived its expiry")
	}
	// Expired records are not taken.
	old := c.rec(model, 0, 8, 4, 800)
	old.Expires = now.Unix()
	mustApply(old, false, ErrExpired)
}

func TestSnapshotLayerCountByMajority(t *testing.T) {
	model := testCID(t, "m")
	v := newView(model, 0)
	for range 2 {
		if _, err := v.apply(newNode(t).rec(model, 0, 8, 1, 100), testNow); err != nil {
			t.Fatal(err)
		}
	}
	liar := newNode(t).rec(model, 0, 8, 1, 100)
	liar.Models[0].Layers = 1000
	liar.Models[0].Last = 1000
	if _, err := v.apply(liar, testNow); err != nil {
		t.Fatal(err)
	}
	s := v.snapshot()
	if s.Layers != 8 || len(s.Records) != 2 || len(s.Serving) != 8 {
		t.Fatalf("layers %d, %d records", s.Layers, len(s.Records))
	}
	if w := s.Without(liar.Peer); len(w.Records) != 2 {
		t.Fatal("Without")
	}
	for p := range s.Records {
		if w := s.Without(p); len(w.Records) != 1 || len(w.Serving[0]) != 1 {
			t.Fatal("Without did not remove the peer")
		}
	}
}

func TestChooseLayers(t *testing.T) {
	model := testCID(t, "m")
	snap := func(ranges ...[3]uint64) Snapshot {
		v := newView(model, 8)
		for _, r := range ranges {
			if _, err := v.apply(newNode(t).rec(model, uint32(r[0]), uint32(r[1]), 1, r[2]), testNow); err != nil {
				t.Fatal(err)
			}
		}
		return v.snapshot()
	}
	tests := []struct {
		name        string
		s           Snapshot
		total, max  int
		first, last int
	}{
		{"empty network starts at 0", snap(), 8, 3, 0, 3},
		{"fits everything", snap([3]uint64{0, 8, 1000}), 8, 20, 0, 8},
		{"nothing fits", snap(), 8, 0, 0, 0},
		{"first gap", snap([3]uint64{0, 3, 3000}), 8, 3, 3, 6},
		{"fills the remaining gap", snap([3]uint64{0, 3, 3000}, [3]uint64{3, 6, 3000}), 8, 3, 5, 8},
		// Layers 0-3 have rate 1000, 4-7 rate 250: the weak half.
		{"weakest half", snap([3]uint64{0, 4, 4000}, [3]uint64{4, 8, 1000}), 8, 4, 4, 8},
		// One weak layer (5) among strong ones: the windows over it tie, the
		// smaller start wins.
		{"bottleneck layer", snap([3]uint64{0, 8, 8000}, [3]uint64{0, 5, 5000}, [3]uint64{6, 8, 2000}), 8, 2, 4, 6},
		// Ties go to the smallest start.
		{"symmetric tie", snap([3]uint64{2, 6, 4000}), 8, 2, 0, 2},
		// Other layer counts are ignored.
		{"other model size", snap([3]uint64{0, 3, 3000}), 16, 3, 0, 3},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			first, last := ChooseLayers(tc.s, tc.total, tc.max)
			if first != tc.first || last != tc.last {
				t.Fatalf("ChooseLayers = [%d, %d), want [%d, %d)", first, last, tc.first, tc.last)
			}
		})
	}
}

// TestChooseLayersFillsTheNetwork: nodes joining one by one with --layers auto
// cover the model, then thicken it evenly.
func TestChooseLayersFillsTheNetwork(t *testing.T) {
	model := testCID(t, "m")
	v := newView(model, 8)
	for i := range 6 {
		first, last := ChooseLayers(v.snapshot(), 8, 3)
		if _, err := v.apply(newNode(t).rec(model, uint32(first), uint32(last), 1, 3000), testNow); err != nil {
			t.Fatal(err)
		}
		if i == 2 && !v.snapshot().Covered() {
			t.Fatal("three nodes of 3 layers did not cover 8 layers")
		}
	}
	c := v.snapshot().Capacity(8)
	lo, hi := c[0], c[0]
	for _, x := range c {
		lo, hi = min(lo, x), max(hi, x)
	}
	if lo == 0 || hi > 3*lo {
		t.Fatalf("uneven capacity after 6 nodes: %v", c)
	}
}
