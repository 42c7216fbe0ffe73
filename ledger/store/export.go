package store

import (
	"bufio"
	"context"
	"encoding/hex"
	"encoding/json"
	"io"
	"time"

	"github.com/dgraph-io/badger/v4"
	"github.com/ipfs/go-cid"

	"github.com/imece/imece/ledger"
)

// ExportedBlock is one line of Export: a block with its derived names and its
// body decoded, so the export can be read by tools that know nothing of the
// canonical encoding, and checked by those that do (Sig is there).
type ExportedBlock struct {
	Owner string `json:"owner"` // hex key
	Seq   uint64 `json:"seq"`
	ID    string `json:"id"`   // CID
	Prev  string `json:"prev"` // CID, "" for a chain's first block
	Kind  string `json:"kind"`
	// Time is the owner's clock, RFC 3339 in UTC with milliseconds.
	Time string `json:"time"`
	Body any    `json:"body"`
	Sig  string `json:"sig"` // hex
}

// Export writes every block of every chain to w as JSON lines, one object per
// block, chains in owner order and each from its first block: what `imece
// ledger export` prints. It reads one consistent snapshot and stops at the
// first block that does not decode (run Verify for the whole story).
func (s *Store) Export(ctx context.Context, w io.Writer) error {
	bw := bufio.NewWriter(w)
	enc := json.NewEncoder(bw)
	err := s.view(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{PrefetchValues: true, PrefetchSize: 256, Prefix: []byte{tBlock}})
		defer it.Close()
		n := 0
		for it.Rewind(); it.Valid(); it.Next() {
			if n++; n%4096 == 0 {
				if err := ctx.Err(); err != nil {
					return err
				}
			}
			b, err := itemBlock(it.Item())
			if err != nil {
				return err
			}
			if err := enc.Encode(exportBlock(b)); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	return bw.Flush()
}

func exportBlock(b *ledger.Block) ExportedBlock {
	e := ExportedBlock{
		Owner: hex.EncodeToString(b.Owner[:]),
		Seq:   b.Seq,
		ID:    b.ID().CID().String(),
		Kind:  b.Kind.String(),
		Time:  time.UnixMilli(b.Time).UTC().Format("2006-01-02T15:04:05.000Z07:00"),
		Body:  exportBody(b),
		Sig:   hex.EncodeToString(b.Sig[:]),
	}
	if !b.Prev.IsZero() {
		e.Prev = b.Prev.CID().String()
	}
	return e
}

// exportedEarn is an Earn body in JSON: keys in hex, the model as a CID,
// factors in milli, amounts in milli-GFT.
type exportedEarn struct {
	Client      string `json:"client"`
	Session     string `json:"session"`
	Window      uint32 `json:"window"`
	Model       string `json:"model"`
	First       uint16 `json:"first_layer"`
	Last        uint16 `json:"last_layer"`
	From        uint32 `json:"from"`
	To          uint32 `json:"to"`
	Results     uint32 `json:"results"`
	Tokens      uint32 `json:"tokens"`
	Multiplier  uint32 `json:"multiplier_milli"`
	Reliability uint32 `json:"reliability_milli"`
	Precision   uint16 `json:"precision_milli"`
	FLOPs       uint64 `json:"flops"`
	Amount      uint64 `json:"amount_milli_gft"`
	Spend       uint64 `json:"spend_milli_gft"`
}

// exportedSpend is a Spend body in JSON.
type exportedSpend struct {
	Server   string `json:"server"`
	Proposal string `json:"proposal"`
	Seq      uint64 `json:"proposal_seq"`
	Amount   uint64 `json:"amount_milli_gft"`
	Micros   uint64 `json:"observed_micros,omitempty"`
}

// exportedHardware is a hardware claim in JSON.
type exportedHardware struct {
	Tier          uint8  `json:"tier"`
	Multiplier    uint32 `json:"multiplier_milli"`
	Fingerprint   string `json:"fingerprint"`
	MatmulMFLOPS  uint64 `json:"matmul_mflops"`
	BandwidthMBps uint64 `json:"bandwidth_mbps"`
	LayerMicros   uint64 `json:"layer_micros"`
	Backend       string `json:"backend"`
}

// exportedAudit is an audit in JSON; check and verdict are named.
type exportedAudit struct {
	Subject  string `json:"subject"`
	Session  string `json:"session"`
	Hop      uint16 `json:"hop"`
	Model    string `json:"model"`
	First    uint16 `json:"first_layer"`
	Last     uint16 `json:"last_layer"`
	Position uint32 `json:"position"`
	Check    string `json:"check"`
	Verdict  string `json:"verdict"`
}

// exportBody decodes the body for its kind; a body that does not decode
// (which the chain rules keep out of the store) is exported raw.
func exportBody(b *ledger.Block) any {
	switch b.Kind {
	case ledger.KindEarn:
		e, err := b.Earn()
		if err != nil {
			break
		}
		model := hex.EncodeToString(e.Model)
		if c, err := e.ModelCID(); err == nil {
			model = c.String()
		}
		return exportedEarn{
			Client: hex.EncodeToString(e.Client[:]), Session: hex.EncodeToString(e.Session[:]),
			Window: e.Window, Model: model, First: e.First, Last: e.Last, From: e.From, To: e.To,
			Results: e.Results, Tokens: e.Tokens, Multiplier: e.Multiplier,
			Reliability: e.Reliability, Precision: e.Precision, FLOPs: e.FLOPs,
			Amount: e.Amount, Spend: e.Spend,
		}
	case ledger.KindSpend:
		sp, err := b.Spend()
		if err != nil {
			break
		}
		return exportedSpend{
			Server: hex.EncodeToString(sp.Server[:]), Proposal: sp.Proposal.CID().String(),
			Seq: sp.Seq, Amount: sp.Amount, Micros: sp.Micros,
		}
	case ledger.KindHardware:
		h, err := b.Hardware()
		if err != nil {
			break
		}
		return exportedHardware{
			Tier: h.Tier, Multiplier: h.Multiplier, Fingerprint: hex.EncodeToString(h.Fingerprint[:]),
			MatmulMFLOPS: h.MatmulMFLOPS, BandwidthMBps: h.BandwidthMBps, LayerMicros: h.LayerMicros, Backend: h.Backend,
		}
	case ledger.KindAudit:
		a, err := b.Audit()
		if err != nil {
			break
		}
		model := hex.EncodeToString(a.Model)
		if c, err := cid.Cast(a.Model); err == nil {
			model = c.String()
		}
		check, verdict := "recompute", "pass"
		if a.Check == ledger.CheckCanary {
			check = "canary"
		}
		if !a.Passed() {
			verdict = "fail"
		}
		return exportedAudit{
			Subject: hex.EncodeToString(a.Subject[:]), Session: hex.EncodeToString(a.Session[:]), Hop: a.Hop,
			Model: model, First: a.First, Last: a.Last, Position: a.Position, Check: check, Verdict: verdict,
		}
	}
	return map[string]string{"raw": hex.EncodeToString(b.Body)}
}
