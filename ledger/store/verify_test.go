package store

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/dgraph-io/badger/v4"

	"github.com/imece/imece/ledger"
)

// rawSet writes below the validation layer, as a damaged disk or a buggy
// writer would.
func rawSet(t *testing.T, s *Store, k, v []byte) {
	t.Helper()
	if err := s.db.Update(func(txn *badger.Txn) error {
		if v == nil {
			return txn.Delete(k)
		}
		return txn.Set(k, v)
	}); err != nil {
		t.Fatal(err)
	}
}

func rawGet(t *testing.T, s *Store, k []byte) []byte {
	t.Helper()
	var v []byte
	if err := s.db.View(func(txn *badger.Txn) error {
		item, err := txn.Get(k)
		if err != nil {
			return err
		}
		v, err = item.ValueCopy(nil)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	return v
}

// threeChains stores chains of 10, 20 and 30 blocks and returns them.
func threeChains(t *testing.T, s *Store) [][]*ledger.Block {
	var out [][]*ledger.Block
	for i, name := range []string{"alice", "bob", "carol"} {
		c := chain(testKey(name), nil, 10*(i+1))
		addAll(t, s, c)
		out = append(out, c)
	}
	return out
}

func TestVerifySound(t *testing.T) {
	s := openTest(t, t.TempDir())
	threeChains(t, s)
	mc := chain(testKey("mallory"), nil, 3)
	addAll(t, s, mc)
	fork := *mc[1]
	fork.Time++
	fork.Sign(testKey("mallory"))
	if err := s.Add(&fork); !errors.Is(err, ledger.ErrFork) {
		t.Fatal(err)
	}
	r, err := s.Verify(context.Background())
	if err != nil {
		t.Fatalf("Verify: %v", err)
	}
	if r.Chains != 4 || r.Blocks != 63 || r.FraudProofs != 1 || !r.OK() {
		t.Fatalf("report %+v", r)
	}
}

func TestVerifyNamesFirstBadBlock(t *testing.T) {
	for _, tc := range []struct {
		name    string
		damage  func(t *testing.T, s *Store, c [][]*ledger.Block)
		owner   string
		seq     uint64
		wantErr error
		inText  string
	}{{
		name: "flipped byte in a body",
		damage: func(t *testing.T, s *Store, c [][]*ledger.Block) {
			k := blockKey(c[1][0].Owner, 7)
			v := rawGet(t, s, k)
			v[len(v)-65] ^= 0x01 // last byte of the body
			rawSet(t, s, k, v)
		},
		owner: "bob", seq: 7, wantErr: ledger.ErrBadSignature,
	}, {
		name: "truncated block",
		damage: func(t *testing.T, s *Store, c [][]*ledger.Block) {
			k := blockKey(c[2][0].Owner, 12)
			rawSet(t, s, k, rawGet(t, s, k)[:50])
		},
		owner: "carol", seq: 12, wantErr: ledger.ErrMalformed,
	}, {
		name: "deleted block",
		damage: func(t *testing.T, s *Store, c [][]*ledger.Block) {
			rawSet(t, s, blockKey(c[0][0].Owner, 4), nil)
		},
		owner: "alice", seq: 4, inText: "missing",
	}, {
		name: "block stored under another position",
		damage: func(t *testing.T, s *Store, c [][]*ledger.Block) {
			rawSet(t, s, blockKey(c[1][0].Owner, 5), c[1][5].Encode())
		},
		owner: "bob", seq: 5, inText: "stored as block 5",
	}, {
		name: "re-signed block breaks the next link",
		damage: func(t *testing.T, s *Store, c [][]*ledger.Block) {
			b := *c[2][8]
			b.Body = spendBody(testKey("rewritten history"), 9)
			b.Sign(testKey("carol"))
			rawSet(t, s, blockKey(b.Owner, b.Seq), b.Encode())
		},
		owner: "carol", seq: 9, inText: "not in the ID index",
	}, {
		name: "chain end lost with its head",
		damage: func(t *testing.T, s *Store, c [][]*ledger.Block) {
			for seq := uint64(25); seq <= 30; seq++ {
				rawSet(t, s, blockKey(c[2][0].Owner, seq), nil)
			}
			rawSet(t, s, headKey(c[2][0].Owner), encodeHead(c[2][23].Head()))
		},
		owner: "carol", seq: 25, inText: "the ID index names it",
	}, {
		name: "head behind the chain",
		damage: func(t *testing.T, s *Store, c [][]*ledger.Block) {
			rawSet(t, s, headKey(c[0][0].Owner), encodeHead(c[0][8].Head()))
		},
		owner: "alice", seq: 10, inText: "past the head",
	}} {
		t.Run(tc.name, func(t *testing.T) {
			s := openTest(t, t.TempDir())
			c := threeChains(t, s)
			tc.damage(t, s, c)
			r, err := s.Verify(context.Background())
			var be *BlockError
			if !errors.As(err, &be) || !errors.Is(err, ErrCorrupt) {
				t.Fatalf("Verify err = %v, want a BlockError", err)
			}
			if len(r.Bad) != 1 || r.Bad[0] != be {
				t.Fatalf("report lists %d bad blocks: %v", len(r.Bad), r.Bad)
			}
			if be.Owner != pub(testKey(tc.owner)) || be.Seq != tc.seq {
				t.Fatalf("named block %d of %s, want %d of %s: %v", be.Seq, be.Owner, tc.seq, tc.owner, err)
			}
			if tc.wantErr != nil && !errors.Is(err, tc.wantErr) {
				t.Errorf("err = %v, want %v", err, tc.wantErr)
			}
			if !strings.Contains(err.Error(), tc.inText) {
				t.Errorf("err = %q, want it to say %q", err, tc.inText)
			}
			t.Logf("%v", err)
		})
	}
}

func TestOpenRefusesBadHead(t *testing.T) {
	dir := t.TempDir()
	s := openTest(t, dir)
	c := threeChains(t, s)
	k := blockKey(c[1][0].Owner, 20)
	v := rawGet(t, s, k)
	v[10] ^= 0x80
	rawSet(t, s, k, v)
	s.Close()
	_, err := Open(dir)
	var be *BlockError
	if !errors.As(err, &be) || be.Owner != c[1][0].Owner || be.Seq != 20 {
		t.Fatalf("Open err = %v, want block 20 of bob named", err)
	}
	t.Logf("%v", err)
}

func TestOpenRefusesOtherVersion(t *testing.T) {
	dir := t.TempDir()
	s := openTest(t, dir)
	rawSet(t, s, versionKey(), []byte{0, 0, 0, 9})
	s.Close()
	if _, err := Open(dir); !errors.Is(err, ErrVersion) {
		t.Fatalf("Open err = %v, want ErrVersion", err)
	}
}

// TestDiskCorruption flips a byte of a stored block in the files of a closed
// store: Open must refuse or VerifyDir name the damaged block (or one stored
// before it in the same damaged table block), never panic or pass.
func TestDiskCorruption(t *testing.T) {
	for _, victimSeq := range []uint64{1, 100, 200} {
		t.Run(fmt.Sprint(victimSeq), func(t *testing.T) {
			dir := t.TempDir()
			s := openTest(t, dir)
			var bob []*ledger.Block
			for _, name := range []string{"alice", "bob", "carol"} {
				c := chain(testKey(name), nil, 200)
				addAll(t, s, c)
				if name == "bob" {
					bob = c
				}
			}
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}
			// Damage a copy, as `imece ledger verify` would be run on one.
			orig := dir
			dir = t.TempDir()
			if err := os.CopyFS(dir, os.DirFS(orig)); err != nil {
				t.Fatal(err)
			}
			victim := bob[victimSeq-1]
			flipBytes(t, dir, victim.Sig[:])
			if _, err := VerifyDir(context.Background(), orig, WithReadOnly()); err != nil {
				t.Fatalf("the original: %v", err)
			}

			if s, err := Open(dir); err != nil {
				t.Logf("Open: %v", err)
				if !errors.Is(err, ErrCorrupt) {
					t.Fatalf("Open err = %v, want ErrCorrupt", err)
				}
			} else {
				s.Close()
			}
			r, err := VerifyDir(context.Background(), dir, WithReadOnly())
			var be *BlockError
			if !errors.As(err, &be) || !errors.Is(err, ErrCorrupt) {
				t.Fatalf("VerifyDir err = %v (report %+v), want a BlockError", err, r)
			}
			if be.Owner != victim.Owner || be.Seq > victim.Seq || be.Seq+30 < victim.Seq {
				t.Fatalf("VerifyDir named block %d of %s, want bob's at or shortly before %d", be.Seq, be.Owner, victimSeq)
			}
			t.Logf("VerifyDir: %v", err)
		})
	}
}

// flipBytes flips a bit inside every occurrence of needle in dir's files.
func flipBytes(t *testing.T, dir string, needle []byte) {
	t.Helper()
	flipped := false
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		p := filepath.Join(dir, e.Name())
		data, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		if i := bytes.Index(data, needle); i >= 0 {
			data[i+5] ^= 0x10
			if err := os.WriteFile(p, data, 0o600); err != nil {
				t.Fatal(err)
			}
			t.Logf("flipped a bit in %s", e.Name())
			flipped = true
		}
	}
	if !flipped {
		t.Fatal("the bytes are in no file")
	}
}

// TestOpenRefusesForgottenTables: Badger opens a store whose MANIFEST is gone
// or damaged as an empty database (deleting the tables it no longer names);
// the store must not carry on as a new one.
func TestOpenRefusesForgottenTables(t *testing.T) {
	dir := t.TempDir()
	s := openTest(t, dir)
	threeChains(t, s)
	s.Close()
	if err := os.Remove(filepath.Join(dir, "MANIFEST")); err != nil {
		t.Fatal(err)
	}
	_, err := Open(dir)
	if !errors.Is(err, ErrCorrupt) {
		t.Fatalf("Open = %v, want ErrCorrupt", err)
	}
	t.Log(err)
}
