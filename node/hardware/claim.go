package hardware

import (
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"os"
	"path/filepath"
	"time"

	"github.com/imece/imece/kernels"
)

// Claim is what a node claims about its hardware: the three figures, the tier
// and multiplier they rate at, and the fingerprint of the device that measured
// them. The first seven fields are those of the ledger's KindHardware block;
// the rest stay local.
//
// The multiplier is rated from the integer figures the claim carries, not from
// the unrounded measurement, so that anyone can recompute it from the claim
// alone (Scale.Check).
type Claim struct {
	Tier          uint8
	Multiplier    uint32 // milli: 1000 = 1.0
	Fingerprint   [32]byte
	MatmulMFLOPS  uint64
	BandwidthMBps uint64
	LayerMicros   uint64
	Backend       string

	// TierName is the tier's class, for people.
	TierName string
	// Index is the performance index the figures give.
	Index float64
	// Device is the human-readable description the fingerprint hashes.
	Device string
	// Quick marks a claim from the quick benchmark, which is for tests only.
	Quick bool
	// MeasuredAt is when the benchmark ran.
	MeasuredAt time.Time
}

// Figures are the claim's figures as Figures.
func (c Claim) Figures() Figures {
	return Figures{
		MatmulGFLOPS:  float64(c.MatmulMFLOPS) / 1e3,
		BandwidthGBps: float64(c.BandwidthMBps) / 1e3,
		LayerLatency:  time.Duration(c.LayerMicros) * time.Microsecond,
	}
}

// Claim makes the claim of measurement m on device d, measured at.
func (s *Scale) Claim(m Measurement, d Device, at time.Time) Claim {
	round := func(v float64) uint64 {
		if !(v > 0) || math.IsInf(v, 0) {
			return 0
		}
		return uint64(math.Round(min(v, 1<<62)))
	}
	c := Claim{
		Fingerprint:   d.Fingerprint(),
		MatmulMFLOPS:  round(m.MatmulGFLOPS * 1e3),
		BandwidthMBps: round(m.BandwidthGBps * 1e3),
		LayerMicros:   round(float64(m.LayerLatency) / float64(time.Microsecond)),
		Backend:       m.Backend,
		Device:        d.String(),
		Quick:         m.Quick,
		MeasuredAt:    at.UTC(),
	}
	return s.rerate(c)
}

// rerate sets the tier, multiplier and index of c from its figures.
func (s *Scale) rerate(c Claim) Claim {
	r := s.Rate(c.Figures())
	c.Tier, c.TierName, c.Multiplier, c.Index = uint8(r.Tier), r.TierName, r.Multiplier, r.Index
	return c
}

// ErrInconsistent: a claim whose tier or multiplier is not what its figures rate
// at.
var ErrInconsistent = errors.New("hardware: claim inconsistent with its figures")

// Check verifies that c's tier and multiplier are what its figures rate at on s:
// the test a validator can apply to a hardware claim without trusting the node.
// It allows for one floating-point step of the index (math.Log and math.Exp
// differ by an ulp between architectures, and Go may fuse a multiply-add on
// some), so a claim made on one machine checks on every other.
func (s *Scale) Check(c Claim) error {
	i := Score(c.Figures(), s.baseline).Index
	lo, hi := s.rateIndex(i*(1-1e-9)), s.rateIndex(i*(1+1e-9))
	if int(c.Tier) < lo.Tier || int(c.Tier) > hi.Tier || c.Multiplier < lo.Multiplier || c.Multiplier > hi.Multiplier {
		r := s.rateIndex(i)
		return fmt.Errorf("%w: claims tier %d at %d milli, the figures rate tier %d at %d milli",
			ErrInconsistent, c.Tier, c.Multiplier, r.Tier, r.Multiplier)
	}
	return nil
}

// Change is how a new claim differs from the previous one: what the ledger's
// quarantine rule looks at, reported here for logs.
type Change struct {
	// First: there was no previous claim.
	First bool
	// FingerprintChanged: the device is not the one that made the previous claim.
	FingerprintChanged bool
	// TierJump is the new tier minus the old (positive: up).
	TierJump int
	// MultiplierBefore and MultiplierAfter are the multipliers in milli.
	MultiplierBefore, MultiplierAfter uint32
}

// Compare says how next differs from prev (nil when there was none).
func Compare(prev *Claim, next Claim) Change {
	if prev == nil {
		return Change{First: true, MultiplierAfter: next.Multiplier}
	}
	return Change{
		FingerprintChanged: prev.Fingerprint != next.Fingerprint,
		TierJump:           int(next.Tier) - int(prev.Tier),
		MultiplierBefore:   prev.Multiplier,
		MultiplierAfter:    next.Multiplier,
	}
}

// Significant reports whether the change is one the ledger quarantines: new
// hardware or a different tier.
func (c Change) Significant() bool { return !c.First && (c.FingerprintChanged || c.TierJump != 0) }

// LogValue makes a Change a group of slog attributes.
func (c Change) LogValue() slog.Value {
	if c.First {
		return slog.GroupValue(slog.Bool("first", true), slog.Uint64("multiplier_milli", uint64(c.MultiplierAfter)))
	}
	return slog.GroupValue(
		slog.Bool("fingerprint_changed", c.FingerprintChanged),
		slog.Int("tier_jump", c.TierJump),
		slog.Uint64("multiplier_before_milli", uint64(c.MultiplierBefore)),
		slog.Uint64("multiplier_after_milli", uint64(c.MultiplierAfter)),
	)
}

// ClaimFile is the name of the claim in a node's data directory.
const ClaimFile = "hardware.json"

// maxClaimFile bounds the file Load reads.
const maxClaimFile = 64 << 10

// Errors of Load.
var (
	// ErrNoClaim: the data directory holds no claim (never benchmarked).
	ErrNoClaim = errors.New("hardware: no stored claim")
	// ErrClaimFile: the stored claim is damaged or of an unknown version.
	ErrClaimFile = errors.New("hardware: invalid claim file")
)

// claimJSON is the file form of a Claim: versioned, the fingerprint in hex.
type claimJSON struct {
	Version       int       `json:"version"`
	Tier          uint8     `json:"tier"`
	TierName      string    `json:"tier_name"`
	Multiplier    uint32    `json:"multiplier_milli"`
	Index         float64   `json:"index"`
	Fingerprint   string    `json:"fingerprint"`
	Device        string    `json:"device"`
	Backend       string    `json:"backend"`
	MatmulMFLOPS  uint64    `json:"matmul_mflops"`
	BandwidthMBps uint64    `json:"bandwidth_mbps"`
	LayerMicros   uint64    `json:"layer_micros"`
	Quick         bool      `json:"quick,omitempty"`
	MeasuredAt    time.Time `json:"measured_at"`
}

const claimVersion = 1

// Save writes c to dir/hardware.json, through a temporary file renamed into
// place so that a crash never leaves half a claim.
func Save(dir string, c Claim) error {
	b, err := json.MarshalIndent(claimJSON{
		Version: claimVersion, Tier: c.Tier, TierName: c.TierName, Multiplier: c.Multiplier, Index: c.Index,
		Fingerprint: hex.EncodeToString(c.Fingerprint[:]), Device: c.Device, Backend: c.Backend,
		MatmulMFLOPS: c.MatmulMFLOPS, BandwidthMBps: c.BandwidthMBps, LayerMicros: c.LayerMicros,
		Quick: c.Quick, MeasuredAt: c.MeasuredAt,
	}, "", "  ")
	if err != nil {
		return fmt.Errorf("save hardware claim: %w", err)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("save hardware claim: %w", err)
	}
	tmp, err := os.CreateTemp(dir, ClaimFile+".partial-*")
	if err != nil {
		return fmt.Errorf("save hardware claim: %w", err)
	}
	_, werr := tmp.Write(append(b, '\n'))
	if werr == nil {
		werr = tmp.Sync()
	}
	if cerr := tmp.Close(); werr == nil {
		werr = cerr
	}
	if werr == nil {
		werr = os.Rename(tmp.Name(), filepath.Join(dir, ClaimFile))
	}
	if werr != nil {
		os.Remove(tmp.Name())
		return fmt.Errorf("save hardware claim: %w", werr)
	}
	return nil
}

// Load reads the claim in dir/hardware.json: ErrNoClaim when there is none,
// ErrClaimFile when it is damaged.
func Load(dir string) (Claim, error) {
	path := filepath.Join(dir, ClaimFile)
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return Claim{}, fmt.Errorf("%w in %s", ErrNoClaim, dir)
	}
	if err != nil {
		return Claim{}, fmt.Errorf("load hardware claim: %w", err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxClaimFile+1))
	if err != nil {
		return Claim{}, fmt.Errorf("load hardware claim: %w", err)
	}
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%w: %s: %s", ErrClaimFile, path, fmt.Sprintf(format, args...))
	}
	if len(data) > maxClaimFile {
		return Claim{}, bad("larger than %d bytes", maxClaimFile)
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	var j claimJSON
	if err := dec.Decode(&j); err != nil {
		return Claim{}, bad("%v", err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return Claim{}, bad("data after the object")
	}
	if j.Version != claimVersion {
		return Claim{}, bad("version %d, want %d", j.Version, claimVersion)
	}
	c := Claim{
		Tier: j.Tier, TierName: j.TierName, Multiplier: j.Multiplier, Index: j.Index, Device: j.Device,
		Backend: j.Backend, MatmulMFLOPS: j.MatmulMFLOPS, BandwidthMBps: j.BandwidthMBps,
		LayerMicros: j.LayerMicros, Quick: j.Quick, MeasuredAt: j.MeasuredAt,
	}
	fp, err := hex.DecodeString(j.Fingerprint)
	if err != nil || len(fp) != len(c.Fingerprint) {
		return Claim{}, bad("fingerprint %q is not 64 hex digits", j.Fingerprint)
	}
	copy(c.Fingerprint[:], fp)
	if c.Backend == "" || c.MatmulMFLOPS == 0 || c.BandwidthMBps == 0 || c.LayerMicros == 0 {
		return Claim{}, bad("missing backend or figures")
	}
	return c, nil
}

// LoadOrMeasure returns the node's hardware claim: the one stored in dataDir
// when it was made by this device (same fingerprint) and is not a quick claim
// where a full one is wanted, re-rated with the current tier table; otherwise a
// new benchmark of be, stored in dataDir. A damaged file is measured over, with
// a warning. The comparison with the previous claim is logged; `imece bench`
// measures afresh whatever is stored.
func LoadOrMeasure(ctx context.Context, dataDir string, be kernels.Backend, opts ...Option) (Claim, error) {
	cfg, err := newConfig(opts)
	if err != nil {
		return Claim{}, err
	}
	scale, err := NewScale(DefaultAnchors(), cfg.tiers)
	if err != nil {
		return Claim{}, err
	}
	dev := Describe(be.Name(), cfg.accelerators...)
	var prev *Claim
	switch c, err := Load(dataDir); {
	case err == nil:
		prev = &c
	case errors.Is(err, ErrNoClaim):
	case errors.Is(err, ErrClaimFile):
		cfg.log.Warn("hardware claim unreadable, benchmarking again", "err", err)
	default:
		return Claim{}, err
	}
	if prev != nil && prev.Fingerprint == dev.Fingerprint() && (!prev.Quick || cfg.quick) {
		c := scale.rerate(*prev)
		cfg.log.Info("hardware claim reused", "tier", c.TierName, "multiplier_milli", c.Multiplier, "measured_at", c.MeasuredAt)
		return c, nil
	}
	cfg.log.Info("benchmarking hardware", "backend", be.Name(), "quick", cfg.quick)
	m, err := measure(ctx, be, cfg)
	if err != nil {
		return Claim{}, err
	}
	c := scale.Claim(m, dev, cfg.now())
	ch := Compare(prev, c)
	lvl := slog.LevelInfo
	if ch.Significant() {
		lvl = slog.LevelWarn
	}
	cfg.log.Log(ctx, lvl, "hardware claim", "tier", c.TierName, "multiplier_milli", c.Multiplier,
		"index", c.Index, "took", m.Took.Round(time.Millisecond), "change", ch)
	if err := Save(dataDir, c); err != nil {
		return Claim{}, err
	}
	return c, nil
}
