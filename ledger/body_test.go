package ledger

import (
	"bytes"
	"errors"
	"testing"
)

func TestEarnRoundTrip(t *testing.T) {
	e := sampleEarn(newParty(2).key)
	if err := e.Price(bigCost(), DefaultGenesis()); err != nil {
		t.Fatal(err)
	}
	enc := e.Encode()
	if len(enc) != 143 {
		t.Fatalf("earn of %d bytes, want 143", len(enc))
	}
	got, err := DecodeEarn(enc)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got.Encode(), enc) {
		t.Fatal("decode then encode changed the bytes")
	}
	if got.FLOPs != e.FLOPs || got.Spend != e.Spend || got.Session != e.Session || !bytes.Equal(got.Model, e.Model) {
		t.Fatalf("decoded %+v, want %+v", got, e)
	}
	c, err := got.ModelCID()
	if err != nil || !bytes.Equal(c.Bytes(), e.Model) {
		t.Fatalf("model CID %v, %v", c, err)
	}
}

func TestDecodeEarnRejects(t *testing.T) {
	good := sampleEarn(newParty(2).key)
	for _, tc := range []struct {
		name string
		edit func(e *Earn)
		raw  func(b []byte) []byte
	}{
		{name: "truncated", raw: func(b []byte) []byte { return b[:len(b)-1] }},
		{name: "trailing byte", raw: func(b []byte) []byte { return append(b, 0) }},
		{name: "model length beyond the body", raw: func(b []byte) []byte { b[52] = 40; return b }},
		{name: "empty", raw: func([]byte) []byte { return nil }},
		{name: "model not a CID", edit: func(e *Earn) { e.Model = bytes.Repeat([]byte{0xff}, 36) }},
		{name: "model a CIDv0", edit: func(e *Earn) { e.Model = e.Model[2:] }},
		{name: "model of another codec", edit: func(e *Earn) { e.Model = append([]byte{0x01, 0x70}, e.Model[2:]...) }},
		{name: "empty layer range", edit: func(e *Earn) { e.First, e.Last = 2, 2 }},
		{name: "reversed layer range", edit: func(e *Earn) { e.First, e.Last = 3, 2 }},
		{name: "empty positions", edit: func(e *Earn) { e.From, e.To = 5, 5 }},
		{name: "more results than positions", edit: func(e *Earn) { e.Results = 11 }},
		{name: "more tokens than positions", edit: func(e *Earn) { e.Tokens = 11 }},
		{name: "multiplier 0", edit: func(e *Earn) { e.Multiplier = 0 }},
		{name: "reliability above 1", edit: func(e *Earn) { e.Reliability = 1001 }},
		{name: "precision 0", edit: func(e *Earn) { e.Precision = 0 }},
		{name: "precision above 1", edit: func(e *Earn) { e.Precision = 1001 }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := *good
			e.Model = append([]byte(nil), good.Model...)
			e.Precision = 500
			if tc.edit != nil {
				tc.edit(&e)
			}
			b := e.Encode()
			if tc.raw != nil {
				b = tc.raw(b)
			}
			if _, err := DecodeEarn(b); !errors.Is(err, ErrMalformed) {
				t.Fatalf("DecodeEarn: %v, want ErrMalformed", err)
			}
		})
	}
}

func TestSpendRoundTrip(t *testing.T) {
	s := &Spend{Server: newParty(1).key, Proposal: BlockID{9}, Seq: 7, Amount: 1234}
	enc := s.Encode()
	if len(enc) != 80 {
		t.Fatalf("spend of %d bytes, want 80", len(enc))
	}
	got, err := DecodeSpend(enc)
	if err != nil || *got != *s {
		t.Fatalf("DecodeSpend: %+v, %v", got, err)
	}
	for name, b := range map[string][]byte{
		"truncated":     enc[:79],
		"trailing":      append(append([]byte(nil), enc...), 0),
		"sequence 0":    (&Spend{Proposal: BlockID{1}}).Encode(),
		"zero proposal": (&Spend{Seq: 3}).Encode(),
	} {
		if _, err := DecodeSpend(b); !errors.Is(err, ErrMalformed) {
			t.Errorf("%s: %v, want ErrMalformed", name, err)
		}
	}
}

func TestBlockBodyAccessors(t *testing.T) {
	server, client := newParty(1), newParty(2)
	g := DefaultGenesis()
	earn := server.propose(t, sampleEarn(client.key), bigCost(), g)
	spend := client.agree(t, earn)
	if _, err := earn.Earn(); err != nil {
		t.Fatal(err)
	}
	if _, err := spend.Spend(); err != nil {
		t.Fatal(err)
	}
	if _, err := earn.Spend(); !errors.Is(err, ErrMalformed) {
		t.Errorf("Spend of an earn block: %v", err)
	}
	if _, err := spend.Earn(); !errors.Is(err, ErrMalformed) {
		t.Errorf("Earn of a spend block: %v", err)
	}
	// Blocks survive their own encoding.
	for _, b := range []*Block{earn, spend} {
		d, err := DecodeBlock(b.Encode())
		if err != nil || d.ID() != b.ID() {
			t.Fatalf("DecodeBlock: %v", err)
		}
	}
}

func TestConstructorsRefuse(t *testing.T) {
	server, client := newParty(1), newParty(2)
	e := sampleEarn(client.key)
	if err := e.Price(bigCost(), DefaultGenesis()); err != nil {
		t.Fatal(err)
	}
	self := *e
	self.Client = server.key
	if _, err := NewEarn(server.priv, server.head, &self, 0); !errors.Is(err, ErrSelfReceipt) {
		t.Errorf("proposal to oneself: %v", err)
	}
	bad := *e
	bad.To = 0
	if _, err := NewEarn(server.priv, server.head, &bad, 0); !errors.Is(err, ErrMalformed) {
		t.Errorf("malformed proposal: %v", err)
	}
	if _, err := NewSpend(server.priv, server.head, &Spend{Server: server.key, Proposal: BlockID{1}, Seq: 1}, 0); !errors.Is(err, ErrSelfReceipt) {
		t.Errorf("agreement with oneself: %v", err)
	}
	if _, err := NewBlock(server.priv, server.head, KindSpend, make([]byte, MaxBodySize+1), 0); !errors.Is(err, ErrMalformed) {
		t.Errorf("oversized body: %v", err)
	}
	// A clock that went back does not make the chain go back.
	b, err := NewEarn(server.priv, Head{Seq: 4, ID: BlockID{1}, Time: 5000}, e, 1000)
	if err != nil || b.Time != 5000 || b.Seq != 5 || b.Prev != (BlockID{1}) {
		t.Errorf("NewEarn after a later head: %+v, %v", b, err)
	}
}
