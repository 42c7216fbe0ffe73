package store

import (
	"errors"
	"testing"

	"github.com/imece/imece/ledger"
)

func TestAddAndQuery(t *testing.T) {
	dir := t.TempDir()
	s := openTest(t, dir)
	alice, bob := testKey("alice"), testKey("bob")
	ac := chain(alice, nil, 5)
	bc := chain(bob, nil, 3)
	addAll(t, s, ac)
	addAll(t, s, bc)

	h, err := s.Head(pub(alice))
	if err != nil || h.Seq != 5 || h.ID != ac[4].ID() {
		t.Fatalf("Head(alice) = %+v, %v", h, err)
	}
	if _, err := s.Head(pub(testKey("nobody"))); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Head(nobody) err = %v, want ErrNotFound", err)
	}
	b, err := s.Get(pub(bob), 2)
	if err != nil || b.ID() != bc[1].ID() {
		t.Fatalf("Get(bob, 2) = %v, %v", b, err)
	}
	if _, err := s.Get(pub(bob), 4); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Get(bob, 4) err = %v", err)
	}
	b, err = s.ByID(ac[2].ID())
	if err != nil || b.Seq != 3 || b.Owner != pub(alice) {
		t.Fatalf("ByID = %v, %v", b, err)
	}
	if _, err := s.ByID(ledger.BlockID{1}); !errors.Is(err, ErrNotFound) {
		t.Fatalf("ByID(unknown) err = %v", err)
	}
	r, err := s.Range(pub(alice), 2, 2)
	if err != nil || len(r) != 2 || r[0].Seq != 2 || r[1].Seq != 3 {
		t.Fatalf("Range(alice, 2, 2) = %v, %v", r, err)
	}
	r, err = s.Range(pub(alice), 4, 100)
	if err != nil || len(r) != 2 {
		t.Fatalf("Range(alice, 4, 100) = %d blocks, %v", len(r), err)
	}
	heads, err := s.Heads()
	if err != nil || len(heads) != 2 || heads[pub(bob)].Seq != 3 {
		t.Fatalf("Heads = %v, %v", heads, err)
	}

	// Duplicates are no-ops; reopening keeps everything.
	addAll(t, s, ac[:2])
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.Add(ac[0]); !errors.Is(err, ErrClosed) {
		t.Fatalf("Add after Close err = %v", err)
	}
	s = openTest(t, dir)
	if h, err := s.Head(pub(bob)); err != nil || h.ID != bc[2].ID() {
		t.Fatalf("Head(bob) after reopen = %+v, %v", h, err)
	}
}

func TestAddRefuses(t *testing.T) {
	s := openTest(t, t.TempDir())
	alice := testKey("alice")
	ac := chain(alice, nil, 4)
	addAll(t, s, ac[:2])

	if err := s.Add(ac[3]); !errors.Is(err, errGap) {
		t.Errorf("gap: err = %v", err)
	}
	forged := *ac[2]
	forged.Body = []byte("other")
	if err := s.Add(&forged); !errors.Is(err, ledger.ErrBadSignature) {
		t.Errorf("forged: err = %v", err)
	}
	unlinked := *ac[2]
	unlinked.Prev = ac[0].ID()
	unlinked.Sign(alice)
	if err := s.Add(&unlinked); !errors.Is(err, errBrokenLink) {
		t.Errorf("broken link: err = %v", err)
	}
	if h, _ := s.Head(pub(alice)); h.Seq != 2 {
		t.Errorf("head moved to %d after refused blocks", h.Seq)
	}
}

func TestForkFreezes(t *testing.T) {
	s := openTest(t, t.TempDir())
	mallory := testKey("mallory")
	mc := chain(mallory, nil, 3)
	addAll(t, s, mc)

	other := *mc[1]
	other.Body = []byte("double spend")
	other.Sign(mallory)
	if err := s.Add(&other); !errors.Is(err, errFork) {
		t.Fatalf("fork: err = %v", err)
	}
	if frozen, err := s.Frozen(pub(mallory)); err != nil || !frozen {
		t.Fatalf("Frozen = %v, %v", frozen, err)
	}
	proofs, err := s.FraudProofs()
	if err != nil || len(proofs) != 1 {
		t.Fatalf("FraudProofs = %v, %v", proofs, err)
	}
	if p := proofs[0]; p.A.ID() != mc[1].ID() || p.B.ID() != other.ID() {
		t.Errorf("proof holds %s and %s", p.A.ID(), p.B.ID())
	}
	next := chain(mallory, mc[2], 1)
	if err := s.Add(next[0]); !errors.Is(err, ErrFrozen) {
		t.Errorf("block after freeze: err = %v", err)
	}
	if frozen, _ := s.Frozen(pub(testKey("alice"))); frozen {
		t.Error("an unknown owner is frozen")
	}
}

func TestAppend(t *testing.T) {
	s := openTest(t, t.TempDir())
	alice := testKey("alice")
	var last *ledger.Block
	for i := range 3 {
		b, err := s.Append(alice, ledger.KindSpend, []byte{byte(i)})
		if err != nil {
			t.Fatal(err)
		}
		if b.Seq != uint64(i+1) || (last != nil && b.Prev != last.ID()) {
			t.Fatalf("Append %d made block %d linking to %s", i, b.Seq, b.Prev)
		}
		last = b
	}
	if h, _ := s.Head(pub(alice)); h.ID != last.ID() {
		t.Fatalf("head %s, last appended %s", h.ID, last.ID())
	}
}
