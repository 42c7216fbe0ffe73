package ledger

import (
	"testing"
)

func BenchmarkSignBlock(b *testing.B) {
	server, client := newParty(1), newParty(2)
	e := sampleEarn(client.key)
	if err := e.Price(bigCost(), DefaultGenesis()); err != nil {
		b.Fatal(err)
	}
	body := e.Encode()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := NewBlock(server.priv, server.head, KindEarn, body, 0); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkVerifyBlock(b *testing.B) {
	server, client := newParty(1), newParty(2)
	blk := server.propose(b, sampleEarn(client.key), bigCost(), DefaultGenesis())
	b.ReportAllocs()
	for b.Loop() {
		if err := ValidateNext(nil, blk); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkApply measures the State applying receipts, both halves verified
// (signatures, chain rules, recomputed amounts) and settled: blocks/s.
func BenchmarkApply(b *testing.B) {
	g := DefaultGenesis()
	c := bigCost()
	servers := []*party{newParty(1), newParty(2), newParty(3)}
	client := newParty(9)
	const receipts = 2000
	var blocks []*Block
	for i := range receipts {
		s := servers[i%len(servers)]
		e := sampleEarn(client.key)
		e.Window = uint32(i)
		blocks = append(blocks, s.propose(b, e, c, g))
		blocks = append(blocks, client.agree(b, blocks[len(blocks)-1]))
	}
	costs := resolver(map[string]Cost{string(modelCID("big")): c})
	b.ReportAllocs()
	applied := 0
	for b.Loop() {
		st := NewState(g, costs)
		for _, blk := range blocks {
			if _, err := st.Apply(blk); err != nil {
				b.Fatal(err)
			}
		}
		applied += len(blocks)
	}
	b.ReportMetric(float64(applied)/b.Elapsed().Seconds(), "blocks/s")
}
