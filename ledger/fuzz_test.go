package ledger

import (
	"bytes"
	"errors"
	"testing"
)

// seedBlocks are blocks of every kind for the fuzzers' seed corpora.
func seedBlocks(f *testing.F) []*Block {
	server, client := newParty(1), newParty(2)
	g := DefaultGenesis()
	earn := server.propose(f, sampleEarn(client.key), bigCost(), g)
	spend := client.agree(f, earn)
	e := sampleEarn(client.key)
	e.Window = 1
	second := server.propose(f, e, bigCost(), g)
	observed := client.agreeObserved(f, second, 12_345)
	claim := server.claim(f, sampleHardware(3, 1000, 1))
	audit := client.audit(f, server.key, false)
	return []*Block{earn, spend, second, observed, claim, audit}
}

func FuzzDecodeHardware(f *testing.F) {
	for _, b := range seedBlocks(f) {
		f.Add(b.Body)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		h, err := DecodeHardware(data)
		if err != nil {
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("error does not wrap ErrMalformed: %v", err)
			}
			return
		}
		if !bytes.Equal(h.Encode(), data) {
			t.Fatal("a decoded claim does not encode to its bytes")
		}
		// What decodes rates within the tier table.
		g := DefaultGenesis()
		if m := ClampClaim(g, h); m < g.Tiers[0].Multiplier || m > g.MaxMultiplier() {
			t.Fatalf("claim clamped to %d", m)
		}
	})
}

func FuzzDecodeAudit(f *testing.F) {
	for _, b := range seedBlocks(f) {
		f.Add(b.Body)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		a, err := DecodeAudit(data)
		if err != nil {
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("error does not wrap ErrMalformed: %v", err)
			}
			return
		}
		if !bytes.Equal(a.Encode(), data) {
			t.Fatal("a decoded audit does not encode to its bytes")
		}
	})
}

func FuzzDecodeEarn(f *testing.F) {
	for _, b := range seedBlocks(f) {
		f.Add(b.Body)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		e, err := DecodeEarn(data)
		if err != nil {
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("error does not wrap ErrMalformed: %v", err)
			}
			return
		}
		if !bytes.Equal(e.Encode(), data) {
			t.Fatal("a decoded earn does not encode to its bytes")
		}
		// What decodes can be priced without panicking, whatever its range.
		_ = ValidateEarn(&Block{Seq: 1}, e, bigCost(), DefaultGenesis())
	})
}

func FuzzDecodeSpend(f *testing.F) {
	for _, b := range seedBlocks(f) {
		f.Add(b.Body)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		s, err := DecodeSpend(data)
		if err != nil {
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("error does not wrap ErrMalformed: %v", err)
			}
			return
		}
		if !bytes.Equal(s.Encode(), data) {
			t.Fatal("a decoded spend does not encode to its bytes")
		}
	})
}

func FuzzDecodeBlock(f *testing.F) {
	for _, b := range seedBlocks(f) {
		f.Add(b.Encode())
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		b, err := DecodeBlock(data)
		if err != nil {
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("error does not wrap ErrMalformed: %v", err)
			}
			return
		}
		if !bytes.Equal(b.Encode(), data) {
			t.Fatal("a decoded block does not encode to its bytes")
		}
		// The chain rules and the state take any decoded block without panicking.
		_ = ValidateNext(nil, b)
		st := NewState(DefaultGenesis(), nil)
		_, _ = st.Apply(b)
		_ = st.Balance(b.Owner)
	})
}

func FuzzDecodeFraudProof(f *testing.F) {
	server, client := newParty(1), newParty(2)
	a := server.propose(f, sampleEarn(client.key), bigCost(), DefaultGenesis())
	e := sampleEarn(client.key)
	e.Window = 3
	if err := e.Price(bigCost(), DefaultGenesis()); err != nil {
		f.Fatal(err)
	}
	b, err := NewEarn(server.priv, Head{}, e, 0)
	if err != nil {
		f.Fatal(err)
	}
	p, ok := DetectFork(a, b)
	if !ok {
		f.Fatal("no fork")
	}
	f.Add(p.Encode())
	f.Fuzz(func(t *testing.T, data []byte) {
		p, err := DecodeFraudProof(data)
		if err != nil {
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("error does not wrap ErrMalformed: %v", err)
			}
			return
		}
		if !bytes.Equal(p.Encode(), data) {
			t.Fatal("a decoded proof does not encode to its bytes")
		}
		if p.Verify() == nil {
			if _, ok := DetectFork(p.A, p.B); !ok {
				t.Fatal("a proof that verifies is not a fork")
			}
		}
	})
}

func FuzzParseGenesis(f *testing.F) {
	f.Add(DefaultGenesis().JSON())
	f.Fuzz(func(t *testing.T, data []byte) {
		g, err := ParseGenesis(data)
		if err != nil {
			if !errors.Is(err, ErrGenesis) {
				t.Fatalf("error does not wrap ErrGenesis: %v", err)
			}
			return
		}
		// What parses is valid, and its file parses to the same parameters.
		again, err := ParseGenesis(g.JSON())
		if err != nil || again.Hash() != g.Hash() {
			t.Fatalf("re-parsing the written file: %v", err)
		}
	})
}
