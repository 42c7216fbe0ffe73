package ledger

import (
	"crypto/ed25519"
	"crypto/sha256"
	"testing"

	"github.com/ipfs/go-cid"
	"github.com/multiformats/go-multihash"

	"github.com/imece/imece/kernels"
)

// party is a participant of a test: its key and its chain so far.
type party struct {
	priv   ed25519.PrivateKey
	key    Key
	head   Head
	blocks []*Block
	now    int64
}

func newParty(seed byte) *party {
	var s [ed25519.SeedSize]byte
	s[0] = seed
	priv := ed25519.NewKeyFromSeed(s[:])
	p := &party{priv: priv, now: 1_700_000_000_000}
	copy(p.key[:], priv.Public().(ed25519.PublicKey))
	return p
}

func (p *party) append(t testing.TB, b *Block, err error) *Block {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
	p.head = b.Head()
	p.blocks = append(p.blocks, b)
	p.now += 1000
	return b
}

// propose prices e with c and appends it to p's chain.
func (p *party) propose(t testing.TB, e *Earn, c Cost, g *Genesis) *Block {
	t.Helper()
	if err := e.Price(c, g); err != nil {
		t.Fatal(err)
	}
	b, err := NewEarn(p.priv, p.head, e, p.now)
	return p.append(t, b, err)
}

// agree appends p's agreement to earn.
func (p *party) agree(t testing.TB, earn *Block) *Block {
	t.Helper()
	s, err := SpendFor(earn)
	if err != nil {
		t.Fatal(err)
	}
	b, err := NewSpend(p.priv, p.head, s, p.now)
	return p.append(t, b, err)
}

// appendRaw signs an arbitrary body after p's head without the constructors'
// checks, for blocks an honest party would not make.
func (p *party) appendRaw(kind Kind, body []byte) *Block {
	b := &Block{Seq: p.head.Seq + 1, Prev: p.head.ID, Kind: kind, Time: p.now, Body: body}
	b.Sign(p.priv)
	p.head = b.Head()
	p.blocks = append(p.blocks, b)
	p.now += 1000
	return b
}

// modelCID names a test model as model manifests are named.
func modelCID(name string) []byte {
	sum := sha256.Sum256([]byte(name))
	mh, err := multihash.Encode(sum[:], multihash.SHA2_256)
	if err != nil {
		panic(err)
	}
	return cid.NewCidV1(cid.Raw, mh).Bytes()
}

// bigCost is a hand-made model with round numbers: 4 layers of 50M weights in
// f16, attention width 4096, a 100M-weight head.
func bigCost() Cost {
	layer := Matrices{Weights: 50_000_000, Bytes: []TypeBytes{{kernels.F16, 100_000_000}}}
	return Cost{
		Layers:   4,
		QDim:     4096,
		PerLayer: []Matrices{layer, layer, layer, layer},
		Head:     Matrices{Weights: 100_000_000, Bytes: []TypeBytes{{kernels.F16, 200_000_000}}},
	}
}

// resolver knows the costs of the models it is given.
func resolver(costs map[string]Cost) func([]byte) (Cost, bool) {
	return func(m []byte) (Cost, bool) {
		c, ok := costs[string(m)]
		return c, ok
	}
}

// sampleEarn is a well-formed proposal for tests that need one.
func sampleEarn(client Key) *Earn {
	return &Earn{
		Client: client, Session: [16]byte{1, 2, 3}, Window: 0, Model: modelCID("big"),
		First: 0, Last: 4, From: 0, To: 10, Results: 1, Tokens: 1,
		Multiplier: 1000, Reliability: 1000,
	}
}

// agreeObserved appends p's agreement to earn carrying the client's observation
// of the hop's time.
func (p *party) agreeObserved(t testing.TB, earn *Block, micros uint64) *Block {
	t.Helper()
	s, err := SpendFor(earn)
	if err != nil {
		t.Fatal(err)
	}
	s.Micros = micros
	b, err := NewSpend(p.priv, p.head, s, p.now)
	return p.append(t, b, err)
}

// claim appends a hardware claim to p's chain.
func (p *party) claim(t testing.TB, h *Hardware) *Block {
	t.Helper()
	b, err := NewHardware(p.priv, p.head, h, p.now)
	return p.append(t, b, err)
}

// audit appends p's audit of subject with the verdict pass or fail.
func (p *party) audit(t testing.TB, subject Key, pass bool) *Block {
	t.Helper()
	a := &Audit{Subject: subject, Session: [16]byte{7}, Model: modelCID("big"), First: 0, Last: 4, Position: 9,
		Check: CheckRecompute, Verdict: VerdictFail}
	if pass {
		a.Verdict = VerdictPass
	}
	b, err := NewAudit(p.priv, p.head, a, p.now)
	return p.append(t, b, err)
}

// sampleHardware is a claim of tier at multiplier by device fp, with figures
// of that class.
func sampleHardware(tier uint8, multiplier uint32, fp byte) *Hardware {
	scale := uint64(multiplier)
	return &Hardware{Tier: tier, Multiplier: multiplier, Fingerprint: [32]byte{fp},
		MatmulMFLOPS: 15_180 * scale, BandwidthMBps: 288 * scale, LayerMicros: 1_000_000 / scale, Backend: "cpu"}
}
