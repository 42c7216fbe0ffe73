package store

import (
	"context"
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

	// Duplicates change nothing; reopening keeps everything.
	for _, b := range ac[:2] {
		if err := s.Add(b); !errors.Is(err, ledger.ErrDuplicate) {
			t.Fatalf("Add of a stored block: %v", err)
		}
	}
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

	if err := s.Add(ac[3]); !errors.Is(err, ledger.ErrGap) {
		t.Errorf("gap: err = %v", err)
	}
	forged := *ac[2]
	forged.Body = spendBody(testKey("someone else"), 3)
	if err := s.Add(&forged); !errors.Is(err, ledger.ErrBadSignature) {
		t.Errorf("forged: err = %v", err)
	}
	unlinked := *ac[2]
	unlinked.Prev = ac[0].ID()
	unlinked.Sign(alice)
	if err := s.Add(&unlinked); !errors.Is(err, ledger.ErrBrokenLink) {
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
	other.Body = spendBody(testKey("elsewhere"), 2)
	other.Sign(mallory)
	if err := s.Add(&other); !errors.Is(err, ledger.ErrFork) {
		t.Fatalf("fork: err = %v", err)
	}
	if frozen, err := s.Frozen(pub(mallory)); err != nil || !frozen {
		t.Fatalf("Frozen = %v, %v", frozen, err)
	}
	proofs, err := s.FraudProofs()
	if err != nil || len(proofs) != 1 {
		t.Fatalf("FraudProofs = %v, %v", proofs, err)
	}
	if p := proofs[0]; p.Verify() != nil || p.Owner() != pub(mallory) || p.A.Seq != 2 {
		t.Errorf("proof of block %d of %s: %v", p.A.Seq, p.Owner(), p.Verify())
	}
	// A frozen chain goes on being stored (its receipts are history), but
	// its owner has nothing to spend.
	addAll(t, s, chain(mallory, mc[2], 1))
	if bal, _ := s.Balance(pub(mallory)); !bal.Frozen || bal.Available() != 0 {
		t.Errorf("balance of a frozen owner: %+v", bal)
	}
	// A fork at the head, and a fork learnt by gossip, are recorded too.
	head := chain(mallory, mc[2], 1)[0]
	head.Time++
	head.Sign(mallory)
	if err := s.Add(head); !errors.Is(err, ledger.ErrFork) {
		t.Fatalf("fork at the head: err = %v", err)
	}
	trudy := testKey("trudy")
	tc := chain(trudy, nil, 1)
	tf := *tc[0]
	tf.Time++
	tf.Sign(trudy)
	p, ok := ledger.DetectFork(tc[0], &tf)
	if !ok {
		t.Fatal("not a fork")
	}
	if err := s.AddFraudProof(p); err != nil {
		t.Fatal(err)
	}
	if frozen, _ := s.Frozen(pub(trudy)); !frozen {
		t.Error("a gossiped proof did not freeze")
	}
	if proofs, _ := s.FraudProofs(); len(proofs) != 3 {
		t.Errorf("%d proofs, want 3", len(proofs))
	}
	if _, err := s.Verify(context.Background()); err != nil {
		t.Fatal(err)
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
		b, err := s.Append(alice, ledger.KindSpend, spendBody(testKey("bob"), uint64(i)))
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
