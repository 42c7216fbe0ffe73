package node

import (
	"testing"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/imece/imece/node/hardware"
)

// TestWatchRate: a client audits a server at its base rate until the server's
// claim changes device (quarantine); then four times as often, never beyond
// every hop.
func TestWatchRate(t *testing.T) {
	mf := tinyManifest()
	srv, cli := testLedger(t, mf), testLedger(t, mf)
	self := srv.Self()
	pub, err := crypto.UnmarshalEd25519PublicKey(self[:])
	if err != nil {
		t.Fatal(err)
	}
	id, err := peer.IDFromPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	share := func(from uint64) {
		t.Helper()
		head, err := srv.st.Head(self)
		if err != nil {
			t.Fatal(err)
		}
		for seq := from; seq <= head.Seq; seq++ {
			b, err := srv.st.Get(self, seq)
			if err != nil {
				t.Fatal(err)
			}
			if err := cli.st.Add(b); err != nil {
				t.Fatal(err)
			}
		}
	}
	claim := hardware.Claim{Tier: 3, Multiplier: 1000, Fingerprint: [32]byte{1}, MatmulMFLOPS: 15_000_000,
		BandwidthMBps: 300_000, LayerMicros: 1000, Backend: "cpu"}
	if err := srv.SetHardware(claim); err != nil {
		t.Fatal(err)
	}
	share(1)
	rate := watchRate(cli, 0.1)
	if got := rate(id); got != 0.1 {
		t.Fatalf("first claim: rate %v, want the base 0.1", got)
	}
	claim.Fingerprint = [32]byte{2} // a new device: quarantine
	if err := srv.SetHardware(claim); err != nil {
		t.Fatal(err)
	}
	share(2)
	if tr, _ := cli.Trust(self); !tr.Quarantined {
		t.Fatalf("new device not quarantined: %+v", tr)
	}
	for _, tc := range []struct{ base, want float64 }{{0.1, 0.4}, {0.3, 1}, {0, 0}} {
		if got := watchRate(cli, tc.base)(id); got != tc.want {
			t.Errorf("quarantined, base %v: rate %v, want %v", tc.base, got, tc.want)
		}
	}
	if got := rate("not a key"); got != 0.1 {
		t.Errorf("unplaceable peer: rate %v, want the base", got)
	}
}
