package ledger

import (
	"bytes"
	"errors"
	"testing"
)

// fork makes two different validly signed blocks at the same sequence of p's chain.
func fork(t *testing.T, p, client *party) (a, b *Block) {
	t.Helper()
	g := DefaultGenesis()
	base := p.head
	a = p.propose(t, sampleEarn(client.key), bigCost(), g)
	e := sampleEarn(client.key)
	e.Window = 7
	if err := e.Price(bigCost(), g); err != nil {
		t.Fatal(err)
	}
	b, err := NewEarn(p.priv, base, e, p.now)
	if err != nil {
		t.Fatal(err)
	}
	return a, b
}

func TestFraudProof(t *testing.T) {
	server, client := newParty(1), newParty(2)
	a, b := fork(t, server, client)
	p, ok := DetectFork(a, b)
	if !ok {
		t.Fatal("fork not detected")
	}
	if q, _ := DetectFork(b, a); q.A != p.A || q.B != p.B {
		t.Fatal("the proof depends on the argument order")
	}
	if err := p.Verify(); err != nil {
		t.Fatal(err)
	}
	if p.Owner() != server.key {
		t.Fatal("wrong owner")
	}
	enc := p.Encode()
	d, err := DecodeFraudProof(enc)
	if err != nil {
		t.Fatal(err)
	}
	if err := d.Verify(); err != nil || !bytes.Equal(d.Encode(), enc) {
		t.Fatalf("decoded proof: %v", err)
	}

	next := client.agree(t, a)
	forged := *p.B
	forged.Time++
	for _, tc := range []struct {
		name string
		p    *FraudProof
		want error
	}{
		{"same block twice", &FraudProof{A: a, B: a}, ErrNotFork},
		{"different owners", &FraudProof{A: a, B: next}, ErrNotFork},
		{"unordered", &FraudProof{A: p.B, B: p.A}, ErrNotFork},
		{"missing block", &FraudProof{A: a}, ErrNotFork},
		{"forged signature", func() *FraudProof { q, _ := orderedProof(p.A, &forged); return q }(), ErrBadSignature},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if err := tc.p.Verify(); !errors.Is(err, tc.want) {
				t.Fatalf("Verify: %v, want %v", err, tc.want)
			}
		})
	}
	if _, ok := DetectFork(a, &forged); ok {
		t.Error("a forged block made a fork")
	}
	if _, ok := DetectFork(a, a); ok {
		t.Error("one block made a fork")
	}
	s1 := server.blocks[0]
	e2 := sampleEarn(client.key)
	e2.Window = 1
	s2 := server.propose(t, e2, bigCost(), DefaultGenesis())
	if _, ok := DetectFork(s1, s2); ok {
		t.Error("consecutive blocks made a fork")
	}
}

// orderedProof builds a proof of x and y in ID order without checking it.
func orderedProof(x, y *Block) (*FraudProof, bool) {
	a, b := x.ID(), y.ID()
	if bytes.Compare(a[:], b[:]) > 0 {
		x, y = y, x
	}
	return &FraudProof{A: x, B: y}, true
}

func TestDecodeFraudProofRejects(t *testing.T) {
	server, client := newParty(1), newParty(2)
	a, b := fork(t, server, client)
	p, _ := DetectFork(a, b)
	enc := p.Encode()
	for name, data := range map[string][]byte{
		"empty":           nil,
		"a block":         a.Encode(),
		"truncated":       enc[:len(enc)-1],
		"trailing":        append(append([]byte(nil), enc...), 0),
		"length too long": append(append([]byte(fraudTag), 0xff, 0xff, 0, 0), a.Encode()...),
		"one block":       enc[:len(fraudTag)+4+len(p.A.Encode())],
		"too large":       append([]byte(fraudTag), make([]byte, MaxFraudProofSize)...),
	} {
		if _, err := DecodeFraudProof(data); !errors.Is(err, ErrMalformed) {
			t.Errorf("%s: %v, want ErrMalformed", name, err)
		}
	}
}
