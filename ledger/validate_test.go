package ledger

import (
	"errors"
	"testing"
)

func TestValidateNext(t *testing.T) {
	g := DefaultGenesis()
	server, client := newParty(1), newParty(2)
	b1 := server.propose(t, sampleEarn(client.key), bigCost(), g)
	e2 := sampleEarn(client.key)
	e2.Window = 1
	b2 := server.propose(t, e2, bigCost(), g)
	e3 := sampleEarn(client.key)
	e3.Window = 2
	b3 := server.propose(t, e3, bigCost(), g)
	c1 := client.agree(t, b1)

	if err := ValidateNext(nil, b1); err != nil {
		t.Fatalf("first block: %v", err)
	}
	if err := ValidateNext(b1, b2); err != nil {
		t.Fatalf("second block: %v", err)
	}
	if err := ValidateNext(nil, c1); err != nil {
		t.Fatalf("client's first block: %v", err)
	}

	resign := func(b *Block, edit func(*Block)) *Block {
		c := *b
		edit(&c)
		c.Sign(server.priv)
		return &c
	}
	forged := *b2
	forged.Body = append([]byte(nil), b2.Body...)
	forged.Body[len(forged.Body)-1] ^= 1 // the Spend amount, after signing
	otherKey := *b2
	otherKey.Sig = c1.Sig

	for _, tc := range []struct {
		name    string
		prev, b *Block
		want    error
	}{
		{"forged body", b1, &forged, ErrBadSignature},
		{"another key's signature", b1, &otherKey, ErrBadSignature},
		{"gap", b1, b3, ErrGap},
		{"first block missing", nil, b2, ErrGap},
		{"reordered", b2, b1, ErrOutOfOrder},
		{"same sequence", b2, b2, ErrOutOfOrder},
		{"broken link", b1, resign(b2, func(b *Block) { b.Prev = BlockID{7} }), ErrBrokenLink},
		{"first block linking", nil, resign(b1, func(b *Block) { b.Prev = BlockID{7} }), ErrBrokenLink},
		{"another owner's chain", c1, b2, ErrBrokenLink},
		{"time going back", b1, resign(b2, func(b *Block) { b.Time = b1.Time - 1 }), ErrTime},
		{"sequence 0", nil, resign(b1, func(b *Block) { b.Seq = 0 }), ErrMalformed},
		{"unknown kind", b1, resign(b2, func(b *Block) { b.Kind = 9 }), ErrMalformed},
		{"earn body as spend", b1, resign(b2, func(b *Block) { b.Kind = KindSpend }), ErrMalformed},
		{"garbage body", b1, resign(b2, func(b *Block) { b.Body = []byte("hello") }), ErrMalformed},
		{"oversized body", b1, resign(b2, func(b *Block) { b.Body = make([]byte, MaxBodySize+1) }), ErrMalformed},
		{"proposal to oneself", b1, resign(b2, func(b *Block) {
			e, _ := DecodeEarn(b.Body)
			e.Client = server.key
			b.Body = e.Encode()
		}), ErrSelfReceipt},
		{"agreement with oneself", nil, func() *Block {
			b := &Block{Seq: 1, Kind: KindSpend, Body: (&Spend{Server: client.key, Proposal: BlockID{1}, Seq: 1}).Encode()}
			b.Sign(client.priv)
			return b
		}(), ErrSelfReceipt},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if err := ValidateNext(tc.prev, tc.b); !errors.Is(err, tc.want) {
				t.Fatalf("ValidateNext: %v, want %v", err, tc.want)
			}
		})
	}
}

func TestValidateEarn(t *testing.T) {
	g := DefaultGenesis()
	c := bigCost()
	server, client := newParty(1), newParty(2)
	good := sampleEarn(client.key)
	if err := good.Price(c, g); err != nil {
		t.Fatal(err)
	}
	b, err := NewEarn(server.priv, Head{}, good, 0)
	if err != nil {
		t.Fatal(err)
	}
	if err := ValidateEarn(b, good, c, g); err != nil {
		t.Fatalf("a priced proposal: %v", err)
	}
	for _, tc := range []struct {
		name string
		edit func(e *Earn)
		want error
	}{
		{"FLOPs inflated", func(e *Earn) { e.FLOPs++ }, ErrAmount},
		{"amount inflated", func(e *Earn) { e.Amount++ }, ErrAmount},
		{"spend lowered", func(e *Earn) { e.Spend-- }, ErrAmount},
		{"precision claimed lower", func(e *Earn) { e.Precision = 125 }, ErrAmount},
		{"repriced at another multiplier", func(e *Earn) { e.Multiplier = 2000 }, ErrAmount},
		{"layers beyond the model", func(e *Earn) { e.Last = 5 }, ErrRange},
		{"results from a middle stage", func(e *Earn) { e.Last = 3 }, ErrRange},
		{"multiplier above the top tier", func(e *Earn) { e.Multiplier = 8001 }, ErrRange},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := *good
			tc.edit(&e)
			if err := ValidateEarn(b, &e, c, g); !errors.Is(err, tc.want) {
				t.Fatalf("ValidateEarn: %v, want %v", err, tc.want)
			}
		})
	}
}

func TestValidatePair(t *testing.T) {
	g := DefaultGenesis()
	server, client, stranger := newParty(1), newParty(2), newParty(3)
	earn := server.propose(t, sampleEarn(client.key), bigCost(), g)
	e2 := sampleEarn(client.key)
	e2.Window = 1
	earn2 := server.propose(t, e2, bigCost(), g)
	spend := client.agree(t, earn)
	if err := ValidatePair(earn, spend); err != nil {
		t.Fatalf("a matching pair: %v", err)
	}
	agreeWith := func(p *party, s Spend) *Block {
		b, err := NewSpend(p.priv, p.head, &s, p.now)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	right, _ := SpendFor(earn)
	for _, tc := range []struct {
		name        string
		earn, spend *Block
		want        error
	}{
		{"another proposal", earn2, spend, ErrUnlinked},
		{"another ID", earn, agreeWith(client, Spend{Server: server.key, Proposal: BlockID{1}, Seq: 1, Amount: right.Amount}), ErrUnlinked},
		{"another sequence", earn, agreeWith(client, Spend{Server: server.key, Proposal: right.Proposal, Seq: 2, Amount: right.Amount}), ErrUnlinked},
		{"another server", earn, agreeWith(client, Spend{Server: stranger.key, Proposal: right.Proposal, Seq: 1, Amount: right.Amount}), ErrUnlinked},
		{"not the proposal's client", earn, agreeWith(stranger, *right), ErrUnlinked},
		{"another amount", earn, agreeWith(client, Spend{Server: server.key, Proposal: right.Proposal, Seq: 1, Amount: right.Amount - 1}), ErrAmount},
		{"two proposals", earn, earn2, ErrMalformed},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if err := ValidatePair(tc.earn, tc.spend); !errors.Is(err, tc.want) {
				t.Fatalf("ValidatePair: %v, want %v", err, tc.want)
			}
		})
	}
}
