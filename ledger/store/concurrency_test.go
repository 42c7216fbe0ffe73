package store

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"

	"github.com/imece/imece/ledger"
)

// TestConcurrentWriters delivers the blocks of many chains from many
// goroutines at once, each chain's blocks raced by two goroutines in
// different orders, as gossip would: every block ends up stored once, in
// order, and nothing else.
func TestConcurrentWriters(t *testing.T) {
	s := openTest(t, t.TempDir())
	const chains, per = 8, 40
	all := make([][]*ledger.Block, chains)
	for c := range all {
		all[c] = spendChain(testKey(fmt.Sprint("concurrent", c)), per)
	}
	var wg sync.WaitGroup
	for c := range all {
		for _, reverse := range []bool{false, true} {
			wg.Go(func() {
				// Retry gaps until the other goroutine filled them.
				pending := append([]*ledger.Block(nil), all[c]...)
				for len(pending) > 0 {
					var left []*ledger.Block
					for i := range pending {
						b := pending[i]
						if reverse {
							b = pending[len(pending)-1-i]
						}
						err := s.Add(b)
						switch {
						case errors.Is(err, ledger.ErrGap):
							left = append(left, b)
						case errors.Is(err, ledger.ErrDuplicate):
						case err != nil:
							t.Error(err)
							return
						}
					}
					pending = left
				}
			})
		}
	}
	wg.Wait()
	r, err := s.Verify(context.Background())
	if err != nil || r.Chains != chains || r.Blocks != chains*per {
		t.Fatalf("Verify = %+v, %v", r, err)
	}
}

// TestConcurrentAppends appends to one chain from many goroutines: the chain
// lock lines them up, so no Append forks the node's own chain.
func TestConcurrentAppends(t *testing.T) {
	s := openTest(t, t.TempDir())
	priv := testKey("appender")
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := range 10 {
				if _, err := s.Append(priv, ledger.KindSpend, spendBody(testKey("srv"), uint64(g*10+i))); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	if h, err := s.Head(pub(priv)); err != nil || h.Seq != 80 {
		t.Fatalf("Head = %+v, %v", h, err)
	}
	if _, err := s.Verify(context.Background()); err != nil {
		t.Fatal(err)
	}
}

func TestReadOnly(t *testing.T) {
	dir := t.TempDir()
	s := openTest(t, dir)
	threeChains(t, s)
	s.Close()
	ro := openTest(t, dir, WithReadOnly())
	if h, err := ro.Head(pub(testKey("carol"))); err != nil || h.Seq != 30 {
		t.Fatalf("Head = %+v, %v", h, err)
	}
	if err := ro.Add(chain(testKey("dave"), nil, 1)[0]); !errors.Is(err, ErrReadOnly) {
		t.Fatalf("Add on a read-only store: %v", err)
	}
	if _, err := ro.Verify(context.Background()); err != nil {
		t.Fatal(err)
	}
}
