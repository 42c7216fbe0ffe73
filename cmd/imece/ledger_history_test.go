package main

import (
	"crypto/ed25519"
	"crypto/sha256"
	"strings"
	"testing"

	"github.com/ipfs/go-cid"
	"github.com/multiformats/go-multihash"

	"github.com/imece/imece/ledger"
)

// TestHistoryTrustLines: `imece ledger history` shows hardware claims and
// audits, a failed one marked.
func TestHistoryTrustLines(t *testing.T) {
	priv := ed25519.NewKeyFromSeed(make([]byte, 32))
	var self ledger.Key
	copy(self[:], priv.Public().(ed25519.PublicKey))
	claim, err := ledger.NewHardware(priv, ledger.Head{}, &ledger.Hardware{Tier: 3, Multiplier: 1250, Fingerprint: [32]byte{0xab},
		MatmulMFLOPS: 1, BandwidthMBps: 1, LayerMicros: 1, Backend: "cpu"}, 1_700_000_000_000)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256([]byte("m"))
	mh, _ := multihash.Encode(sum[:], multihash.SHA2_256)
	audit, err := ledger.NewAudit(priv, claim.Head(), &ledger.Audit{Subject: ledger.Key{7}, Model: cid.NewCidV1(cid.Raw, mh).Bytes(),
		First: 0, Last: 2, Position: 5, Check: ledger.CheckRecompute, Verdict: ledger.VerdictFail}, 1_700_000_001_000)
	if err != nil {
		t.Fatal(err)
	}
	var out strings.Builder
	writeHistoryLine(&out, self, claim)
	writeHistoryLine(&out, self, audit)
	for _, want := range []string{"hardware\ttier 3, 1.250\tab000000", "audit FAIL\t070000000000", "[0, 2)\t@5"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("history lacks %q:\n%s", want, out.String())
		}
	}
}
