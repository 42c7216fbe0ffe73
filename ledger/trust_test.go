package ledger

import (
	"errors"
	"strings"
	"testing"
)

func TestTrustBodies(t *testing.T) {
	h := sampleHardware(3, 1000, 1)
	if got, err := DecodeHardware(h.Encode()); err != nil || *got != *h {
		t.Fatalf("hardware round trip: %+v, %v", got, err)
	}
	a := &Audit{Subject: Key{1}, Session: [16]byte{2}, Hop: 1, Model: modelCID("big"), First: 1, Last: 3, Position: 7,
		Check: CheckCanary, Verdict: VerdictPass}
	if got, err := DecodeAudit(a.Encode()); err != nil || string(got.Encode()) != string(a.Encode()) || !got.Passed() {
		t.Fatalf("audit round trip: %+v, %v", got, err)
	}
	sp := &Spend{Server: Key{1}, Proposal: BlockID{2}, Seq: 3, Amount: 4}
	if len(sp.Encode()) != spendSize {
		t.Fatal("an unobserved spend is not 80 bytes")
	}
	sp.Micros = 5
	if got, err := DecodeSpend(sp.Encode()); err != nil || *got != *sp {
		t.Fatalf("observed spend round trip: %+v, %v", got, err)
	}
	zero := append(sp.Encode()[:spendSize], make([]byte, 8)...)
	for name, body := range map[string][]byte{
		"tier 8":         func() []byte { h := *h; h.Tier = 8; return h.Encode() }(),
		"no multiplier":  func() []byte { h := *h; h.Multiplier = 0; return h.Encode() }(),
		"no bandwidth":   func() []byte { h := *h; h.BandwidthMBps = 0; return h.Encode() }(),
		"no backend":     func() []byte { h := *h; h.Backend = ""; return h.Encode() }(),
		"long backend":   func() []byte { h := *h; h.Backend = strings.Repeat("x", 33); return h.Encode() }(),
		"trailing bytes": append(h.Encode(), 0),
	} {
		if _, err := DecodeHardware(body); !errors.Is(err, ErrMalformed) {
			t.Errorf("hardware %s: %v", name, err)
		}
	}
	for name, body := range map[string][]byte{
		"verdict 3":   func() []byte { a := *a; a.Verdict = 3; return a.Encode() }(),
		"check 0":     func() []byte { a := *a; a.Check = 0; return a.Encode() }(),
		"empty range": func() []byte { a := *a; a.Last = a.First; return a.Encode() }(),
		"model":       func() []byte { a := *a; a.Model = []byte("not a cid"); return a.Encode() }(),
	} {
		if _, err := DecodeAudit(body); !errors.Is(err, ErrMalformed) {
			t.Errorf("audit %s: %v", name, err)
		}
	}
	if _, err := DecodeSpend(zero); !errors.Is(err, ErrMalformed) {
		t.Errorf("a spend observing 0 µs: %v", err)
	}
	p := newParty(1)
	self := &Audit{Subject: p.key, Session: [16]byte{2}, Model: modelCID("big"), First: 0, Last: 1, Check: CheckRecompute, Verdict: VerdictFail}
	if _, err := NewAudit(p.priv, Head{}, self, 0); !errors.Is(err, ErrSelfAudit) {
		t.Errorf("self audit made: %v", err)
	}
	if err := ValidateNext(nil, p.appendRaw(KindAudit, self.Encode())); !errors.Is(err, ErrSelfAudit) {
		t.Errorf("self audit validated: %v", err)
	}
}

// TestQuarantine: a first claim earns at once; a new device two tiers up is
// quarantined for three periods at the multiplier in force before; a lower
// claim applies at once.
func TestQuarantine(t *testing.T) {
	g := DefaultGenesis()
	st := NewState(g, nil)
	p := newParty(1)
	if m := st.Multiplier(p.key, p.now); m != g.Trust.UnclaimedMultiplier {
		t.Fatalf("unclaimed multiplier %d", m)
	}
	mustApply(t, st, p.claim(t, sampleHardware(3, 1500, 1)))
	if m := st.Multiplier(p.key, p.now); m != 1500 {
		t.Fatalf("first claim at %d", m)
	}
	up := p.claim(t, sampleHardware(5, 4000, 2))
	mustApply(t, st, up)
	q := 3 * g.Trust.QuarantineMillis
	if until, ok := st.Quarantine(p.key, up.Time); !ok || until != up.Time+q {
		t.Fatalf("quarantine until %d (%v), want %d", until, ok, up.Time+q)
	}
	if m := st.Multiplier(p.key, up.Time+q-1); m != 1500 {
		t.Errorf("in quarantine at %d", m)
	}
	if m := st.Multiplier(p.key, up.Time+q); m != 4000 {
		t.Errorf("after quarantine at %d", m)
	}
	// A claim outside its tier's interval earns at the interval's bound.
	if h, _ := st.HardwareClaim(p.key); ClampClaim(g, &h) != 4000 || ClampClaim(g, sampleHardware(2, 8000, 1)) != 1000 {
		t.Error("claims not clamped to their tier")
	}
}

// TestReliability: audits by auditors with standing count once each, failures
// weighing F against a prior of k; an auditor that never paid the subject is
// ignored.
func TestReliability(t *testing.T) {
	g := DefaultGenesis()
	c := bigCost()
	st := NewState(g, resolver(map[string]Cost{string(modelCID("big")): c}))
	server, a, b, stranger := newParty(1), newParty(2), newParty(3), newParty(4)
	for _, cl := range []*party{a, b} {
		earn := server.propose(t, sampleEarn(cl.key), c, g)
		applyAll(t, st, earn, cl.agree(t, earn))
	}
	applyAll(t, st, stranger.audit(t, server.key, false))
	at := a.now + 10_000
	if r := st.Reliability(server.key, at); r != 1000 {
		t.Fatalf("an auditor without standing counted: %d", r)
	}
	applyAll(t, st, a.audit(t, server.key, false), a.audit(t, server.key, false))
	if r := st.Reliability(server.key, at); r != 500 { // 4 / (4 + 4·1)
		t.Fatalf("one failing auditor: %d, want 500", r)
	}
	applyAll(t, st, b.audit(t, server.key, true))
	if r := st.Reliability(server.key, at); r != 555 { // 5 / (5 + 4)
		t.Fatalf("a failing and a passing auditor: %d, want 555", r)
	}
	applyAll(t, st, a.audit(t, server.key, true))
	if r := st.Reliability(server.key, at); r != 1000 {
		t.Fatalf("the failing auditor's latest passes: %d", r)
	}
	if r := st.Reliability(server.key, at+g.Trust.WindowMillis+10_000); r != 1000 {
		t.Fatalf("audits out of the window count: %d", r)
	}
}

func TestImpliedMultiplier(t *testing.T) {
	for _, tc := range []struct {
		name                               string
		claimed                            uint32
		work, observed, forwards, overhead uint64
		want                               uint32
	}{
		{"as claimed", 3000, 50_000, 50_000 + 65*2_000, 65, 10_000, 3000},
		{"unobserved", 3000, 50_000, 0, 65, 10_000, 3000},
		{"all overhead (a tiny model)", 3000, 10, 300_000, 65, 10_000, 3000},
		{"ten times slower", 3000, 50_000, 500_000 + 65*10_000, 65, 10_000, 300},
		{"slower than claimed by half", 1000, 100_000, 200_000, 1, 0, 500},
	} {
		if got := ImpliedMultiplier(tc.claimed, tc.work, tc.observed, tc.forwards, tc.overhead); got != tc.want {
			t.Errorf("%s: %d, want %d", tc.name, got, tc.want)
		}
	}
}
