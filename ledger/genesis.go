package ledger

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"unicode/utf8"
)

// Genesis holds the parameters a network agrees on before any block exists: the
// tier table that bounds multipliers, the precision factors, the grid weights, the
// starter allowance, the settlement interval and the trust constants. It lives in a JSON file (the
// network file) that every node of the network has; nodes compare Hash at
// handshake and refuse peers of another network, since the same chains would give
// them different balances.
type Genesis struct {
	// Network names the network, e.g. "imece-local".
	Network string `json:"network"`
	// Tiers are the eight hardware classes, slowest first; a node's multiplier is
	// interpolated between their anchors and never exceeds the last.
	Tiers []Tier `json:"tiers"`
	// Precision holds the precision factors of the tensor type classes.
	Precision Precision `json:"precision_milli"`
	// Grid weighs the terms of P_grid = w1(1−L) + w2(1−C) + w3·R.
	Grid GridWeights `json:"grid_weights_milli"`
	// StarterAllowance is what every identity may spend before earning anything,
	// in milli-GFT, so a fresh client can use the network.
	StarterAllowance uint64 `json:"starter_allowance_milli_gft"`
	// SettlementTokens is N: a session hop settles a receipt every N generated
	// tokens and at the session's end.
	SettlementTokens uint32 `json:"settlement_tokens"`
	// Trust holds the constants of the trust rules: quarantine, reliability,
	// the implied multiplier and the self-dealing bound (doc.go, "Trust").
	Trust Trust `json:"trust"`
}

// Trust holds the constants of the rules that make credits honest (doc.go).
type Trust struct {
	// UnclaimedMultiplier is the multiplier (milli) of a server that has no
	// hardware claim on its chain, as if it claimed the baseline figures below.
	UnclaimedMultiplier uint32 `json:"unclaimed_multiplier_milli"`
	// BaselineMFLOPS and BaselineMBps are the figures an unclaimed server's
	// implied multiplier is computed with: what the baseline class measures.
	BaselineMFLOPS uint64 `json:"baseline_mflops"`
	BaselineMBps   uint64 `json:"baseline_mbps"`
	// OverheadMicros is what a client's observation may hold besides the work,
	// per forward and hop: network, scheduling, the engine's fixed costs. It
	// keeps tiny models, whose hops are all overhead, from rating honest
	// servers at the bottom.
	OverheadMicros uint64 `json:"overhead_micros"`
	// QuarantineMillis is the quarantine of a new device, and per tier of a jump
	// in the claimed tier.
	QuarantineMillis int64 `json:"quarantine_millis"`
	// WindowMillis is W: reliability counts the audits of the last W before a
	// receipt, and independent evidence is sought within W of it.
	WindowMillis int64 `json:"window_millis"`
	// ReliabilityPrior is k, the passes every node is credited with before any
	// audit; FailureWeight is F, what one failing auditor weighs against one
	// passing auditor.
	ReliabilityPrior uint32 `json:"reliability_prior"`
	FailureWeight    uint32 `json:"failure_weight"`
}

// Tier is one hardware class of the tier table.
type Tier struct {
	Name string `json:"name"`
	// Examples is descriptive: hardware typical of the class.
	Examples string `json:"examples"`
	// Multiplier is the class's hardware multiplier in milli (1000 = 1.0).
	Multiplier uint32 `json:"multiplier_milli"`
}

// Precision holds the precision factors (milli) of the tensor type classes that
// PrecisionFactor maps each type to.
type Precision struct {
	F32   uint16 `json:"f32"`
	F16   uint16 `json:"f16"`  // f16 and bf16
	Bits8 uint16 `json:"8bit"` // Q8_0, Q6_K
	Bits4 uint16 `json:"4bit"` // Q4_0, Q4_K
}

// GridWeights are w1, w2, w3 of P_grid in milli; they sum to 1000 so that P_grid
// stays within [0, 1].
type GridWeights struct {
	Load      uint16 `json:"load"`
	Carbon    uint16 `json:"carbon"`
	Renewable uint16 `json:"renewable"`
}

// ErrGenesis: a network file that is not valid JSON of the expected shape, has
// unknown fields, or holds values out of range.
var ErrGenesis = errors.New("ledger: invalid genesis")

// Genesis bounds.
const (
	// NumTiers is the size of the tier table.
	NumTiers = 8
	// MaxGenesisSize bounds a network file.
	MaxGenesisSize = 64 << 10
	maxNetworkID   = 64
	maxTierText    = 256
	maxSettlement  = 1 << 20
	maxOverhead    = 10_000_000             // 10 s per forward and hop
	maxTrustMillis = 366 * 24 * 3600 * 1000 // a year
	maxTrustCount  = 1000
	genesisTag     = "imece/genesis/1\n"
)

// DefaultGenesis is the network of `imece testnet` and of nodes started without a
// network file: "imece-local", the eight hardware tiers (0.05 to 8.00), the
// precision factors of DESIGN.md §5, a starter allowance of 10,000 GFT (about
// 1,400 tokens of a 7B f16 model, or 36,000 of a 1B 4-bit one) and settlement
// every 64 tokens. It returns a new
// value each time: callers may change it.
func DefaultGenesis() *Genesis {
	return &Genesis{
		Network: "imece-local",
		Tiers: []Tier{
			{"Mobile / Edge", "phone SoCs, Raspberry Pi", 50},
			{"CPU only", "desktop and server CPUs", 100},
			{"Entry consumer GPU", "integrated graphics", 500},
			{"Mid consumer GPU (baseline)", "RTX 3060, RX 6700 XT", 1000},
			{"High consumer GPU", "RTX 4080, RX 7900 XTX", 2000},
			{"Prosumer GPU", "RTX 4090, RTX 6000 Ada", 3000},
			{"Professional accelerator", "A40, L40S", 5000},
			{"Data-centre accelerator", "A100, H100, H200", 8000},
		},
		Precision:        Precision{F32: 1000, F16: 500, Bits8: 250, Bits4: 125},
		Grid:             GridWeights{Load: 300, Carbon: 400, Renewable: 300},
		StarterAllowance: 10_000_000,
		SettlementTokens: 64,
		Trust:            DefaultTrust(),
	}
}

// DefaultTrust are the trust constants of DefaultGenesis: unclaimed servers at
// the baseline multiplier with the baseline class's expected figures (an RTX
// 3060: 60% of 25.3 TFLOP/s, 80% of 360 GB/s, as node/hardware's anchors), 10 ms
// of overhead per forward and hop, a 6-hour quarantine per tier of a jump, a
// one-day window, and a failing auditor weighing four passes against a prior of
// four.
func DefaultTrust() Trust {
	return Trust{
		UnclaimedMultiplier: 1000,
		BaselineMFLOPS:      15_180_000,
		BaselineMBps:        288_000,
		OverheadMicros:      10_000,
		QuarantineMillis:    6 * 3600 * 1000,
		WindowMillis:        24 * 3600 * 1000,
		ReliabilityPrior:    4,
		FailureWeight:       4,
	}
}

// ParseGenesis reads a network file strictly: one JSON object, no unknown fields,
// nothing after it, every value in range.
func ParseGenesis(data []byte) (*Genesis, error) {
	if len(data) > MaxGenesisSize {
		return nil, fmt.Errorf("%w: %d bytes, more than %d", ErrGenesis, len(data), MaxGenesisSize)
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	g := &Genesis{}
	if err := dec.Decode(g); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrGenesis, err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, fmt.Errorf("%w: data after the object", ErrGenesis)
	}
	if err := g.Validate(); err != nil {
		return nil, err
	}
	return g, nil
}

// JSON is the network file for g, indented, as `imece testnet` writes it.
func (g *Genesis) JSON() []byte {
	b, err := json.MarshalIndent(g, "", "  ")
	if err != nil {
		panic(err) // plain integers and strings always marshal
	}
	return append(b, '\n')
}

// Validate checks that every value is in range: a network name, eight tiers of
// increasing multipliers, precision factors in (0, 1000] that do not rise as
// precision falls, grid weights summing to 1000, a settlement interval.
func (g *Genesis) Validate() error {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%w: %s", ErrGenesis, fmt.Sprintf(format, args...))
	}
	if g.Network == "" || len(g.Network) > maxNetworkID {
		return bad("network id %q", g.Network)
	}
	for _, r := range g.Network {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_' || r == '.') {
			return bad("network id %q: letters, digits, '-', '_' and '.' only", g.Network)
		}
	}
	if len(g.Tiers) != NumTiers {
		return bad("%d tiers, want %d", len(g.Tiers), NumTiers)
	}
	for i, t := range g.Tiers {
		switch {
		case t.Name == "" || len(t.Name) > maxTierText || !utf8.ValidString(t.Name):
			return bad("tier %d name %q", i, t.Name)
		case len(t.Examples) > maxTierText || !utf8.ValidString(t.Examples):
			return bad("tier %d examples %q", i, t.Examples)
		case t.Multiplier == 0:
			return bad("tier %d multiplier 0", i)
		case i > 0 && t.Multiplier <= g.Tiers[i-1].Multiplier:
			return bad("tier %d multiplier %d not above tier %d's %d", i, t.Multiplier, i-1, g.Tiers[i-1].Multiplier)
		}
	}
	p := g.Precision
	if p.Bits4 == 0 || p.Bits4 > p.Bits8 || p.Bits8 > p.F16 || p.F16 > p.F32 || p.F32 > 1000 {
		return bad("precision factors %+v: want 0 < 4bit ≤ 8bit ≤ f16 ≤ f32 ≤ 1000", p)
	}
	if w := g.Grid; uint32(w.Load)+uint32(w.Carbon)+uint32(w.Renewable) != 1000 {
		return bad("grid weights %+v do not sum to 1000", w)
	}
	if g.SettlementTokens == 0 || g.SettlementTokens > maxSettlement {
		return bad("settlement every %d tokens", g.SettlementTokens)
	}
	t := g.Trust
	switch {
	case t.UnclaimedMultiplier == 0 || t.UnclaimedMultiplier > g.MaxMultiplier():
		return bad("unclaimed multiplier %d outside (0, %d]", t.UnclaimedMultiplier, g.MaxMultiplier())
	case t.BaselineMFLOPS == 0 || t.BaselineMBps == 0:
		return bad("baseline figures %d MFLOP/s, %d MB/s", t.BaselineMFLOPS, t.BaselineMBps)
	case t.OverheadMicros > maxOverhead:
		return bad("overhead %d µs above %d", t.OverheadMicros, maxOverhead)
	case t.QuarantineMillis < 0 || t.QuarantineMillis > maxTrustMillis:
		return bad("quarantine %d ms outside [0, %d]", t.QuarantineMillis, maxTrustMillis)
	case t.WindowMillis <= 0 || t.WindowMillis > maxTrustMillis:
		return bad("window %d ms outside (0, %d]", t.WindowMillis, maxTrustMillis)
	case t.ReliabilityPrior == 0 || t.ReliabilityPrior > maxTrustCount || t.FailureWeight > maxTrustCount:
		return bad("reliability prior %d, failure weight %d: want (0, %d]", t.ReliabilityPrior, t.FailureWeight, maxTrustCount)
	}
	return nil
}

// MaxMultiplier is the top tier's multiplier, the most any node earns per FLOP.
func (g *Genesis) MaxMultiplier() uint32 {
	var top uint32
	for _, t := range g.Tiers {
		top = max(top, t.Multiplier)
	}
	return top
}

// Encode returns the canonical form of the parameters, which Hash hashes: the
// file's whitespace, key order and number spelling do not change it.
//
//	genesis := "imece/genesis/1\n" str network u8 tiers (str name str examples u32 multiplier)*tiers
//	           u16 f32 u16 f16 u16 8bit u16 4bit u16 load u16 carbon u16 renewable
//	           u64 starter_allowance u32 settlement_tokens
//	           u32 unclaimed_multiplier u64 baseline_mflops u64 baseline_mbps u64 overhead_micros
//	           i64 quarantine_millis i64 window_millis u32 reliability_prior u32 failure_weight
//	str     := u16 length, bytes                     (integers little-endian)
func (g *Genesis) Encode() []byte {
	out := []byte(genesisTag)
	str := func(s string) {
		out = binary.LittleEndian.AppendUint16(out, uint16(len(s)))
		out = append(out, s...)
	}
	str(g.Network)
	out = append(out, byte(len(g.Tiers)))
	for _, t := range g.Tiers {
		str(t.Name)
		str(t.Examples)
		out = binary.LittleEndian.AppendUint32(out, t.Multiplier)
	}
	for _, v := range []uint16{g.Precision.F32, g.Precision.F16, g.Precision.Bits8, g.Precision.Bits4, g.Grid.Load, g.Grid.Carbon, g.Grid.Renewable} {
		out = binary.LittleEndian.AppendUint16(out, v)
	}
	out = binary.LittleEndian.AppendUint64(out, g.StarterAllowance)
	out = binary.LittleEndian.AppendUint32(out, g.SettlementTokens)
	t := g.Trust
	out = binary.LittleEndian.AppendUint32(out, t.UnclaimedMultiplier)
	for _, v := range []uint64{t.BaselineMFLOPS, t.BaselineMBps, t.OverheadMicros, uint64(t.QuarantineMillis), uint64(t.WindowMillis)} {
		out = binary.LittleEndian.AppendUint64(out, v)
	}
	out = binary.LittleEndian.AppendUint32(out, t.ReliabilityPrior)
	return binary.LittleEndian.AppendUint32(out, t.FailureWeight)
}

// Hash identifies the network's parameters: the SHA2-256 of Encode. Two nodes
// with the same hash derive the same balances from the same chains.
func (g *Genesis) Hash() [32]byte { return sha256.Sum256(g.Encode()) }
