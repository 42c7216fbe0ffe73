package grid

import (
	"context"
	"errors"
	"math"
	"time"

	"github.com/imece/imece/ledger"
)

// Reading is the state of a grid at a moment, as a source reports it. Either
// value may be missing: carbon-intensity APIs often give one without the other.
type Reading struct {
	// At is when the values start to hold: the start of the period they describe.
	At time.Time
	// Carbon is the carbon intensity of the electricity, in gCO2eq/kWh; valid
	// when HasCarbon.
	Carbon    float64
	HasCarbon bool
	// Renewable is the renewable share of the electricity, in [0, 1]; valid
	// when HasRenewable.
	Renewable    float64
	HasRenewable bool
}

// Source reports the state of the grid a node draws from. Implementations:
// File (a time series on disk), HTTP (a carbon-intensity API) and Simulated (a
// daily curve for testnets); Static for a fixed reading.
type Source interface {
	// Reading returns the grid's state at time at. It fails, with an error
	// wrapping ErrNoReading, ErrFormat or ErrUnavailable, when it knows nothing
	// usable for that time.
	Reading(ctx context.Context, at time.Time) (Reading, error)
}

// Errors of the sources. A Signal treats every one the same way (it assumes the
// average grid), so they matter for logs and tests.
var (
	// ErrNoReading: the source holds no value for the time asked: before its
	// series starts, or after its last value stopped holding.
	ErrNoReading = errors.New("grid: no reading for that time")
	// ErrFormat: a file or response that is not one of the documented shapes,
	// or holds values out of range.
	ErrFormat = errors.New("grid: malformed grid data")
	// ErrTooLarge: a file or response over its size cap.
	ErrTooLarge = errors.New("grid: grid data too large")
	// ErrUnavailable: an HTTP source could not fetch its data (network error,
	// timeout, status other than 200).
	ErrUnavailable = errors.New("grid: grid data unavailable")
)

// Normalisation and defaults of P_grid's terms.
const (
	// DefaultCarbonCeiling is the carbon intensity, in gCO2eq/kWh, that counts
	// as fully dirty (C = 1): about a coal-fired grid (coal's lifecycle median
	// is 820 g/kWh, IPCC AR5 WG3 annex III). Cleaner grids scale linearly down to
	// C = 0 at zero emissions; dirtier ones are clamped to 1.
	DefaultCarbonCeiling = 800
	// AverageCarbon and AverageRenewable describe the world's average grid
	// (Ember, Global Electricity Review 2024: 480 gCO2/kWh and 30% renewables
	// in 2023). A node that knows nothing of its grid advertises this, so that
	// it neither wins work by saying nothing nor loses all of it.
	AverageCarbon    = 480
	AverageRenewable = 0.30
)

// Terms are the inputs of P_grid, each in permille (0 to 1000).
type Terms struct {
	// Load is L, the node's load.
	Load uint16
	// Carbon is C, the normalised carbon intensity: 0 clean, 1000 dirty.
	Carbon uint16
	// Renewable is R, the renewable share.
	Renewable uint16
	// NoCarbon and NoRenewable mark terms the source did not give; their
	// weight goes to the other grid term (see Score).
	NoCarbon, NoRenewable bool
}

// Score is P_grid in permille: w1(1−L) + w2(1−C) + w3·R, with the genesis's
// weights in milli, in integer arithmetic (rounded half up) since the result
// is signed into node records. Values over 1000 are taken as 1000.
//
// A missing grid term gives its weight to the other one, so that a source
// reporting only carbon intensity (the UK API's /intensity) or only a renewable
// share still spans the whole range: with carbon alone P_grid is
// w1(1−L) + (w2+w3)(1−C). When both are missing the world's average grid is
// assumed (AverageCarbon, AverageRenewable at DefaultCarbonCeiling).
func Score(w ledger.GridWeights, t Terms) uint16 {
	clamp := func(v uint16) uint32 { return uint32(min(v, 1000)) }
	wc, wr := uint32(w.Carbon), uint32(w.Renewable)
	c, r := clamp(t.Carbon), clamp(t.Renewable)
	switch {
	case t.NoCarbon && t.NoRenewable:
		c = uint32(CarbonPermille(AverageCarbon, DefaultCarbonCeiling))
		r = uint32(SharePermille(AverageRenewable))
	case t.NoCarbon:
		wc, wr = 0, wc+wr
	case t.NoRenewable:
		wc, wr = wc+wr, 0
	}
	sum := uint32(w.Load)*(1000-clamp(t.Load)) + wc*(1000-c) + wr*r
	return uint16(min((sum+500)/1000, 1000))
}

// CarbonPermille normalises a carbon intensity in gCO2eq/kWh to C in permille:
// gPerKWh/ceiling, clamped to [0, 1000], rounded.
func CarbonPermille(gPerKWh, ceiling float64) uint16 {
	if ceiling <= 0 || math.IsNaN(gPerKWh) || math.IsNaN(ceiling) {
		return 1000
	}
	return permille(gPerKWh / ceiling)
}

// SharePermille converts a share in [0, 1] to permille, clamped and rounded.
func SharePermille(share float64) uint16 {
	if math.IsNaN(share) {
		return 0
	}
	return permille(share)
}

func permille(x float64) uint16 {
	return uint16(math.Round(min(max(x, 0), 1) * 1000))
}

// LoadPermille is a stage server's load in permille: its open sessions over its
// session capacity (open plus free slots). A server with no capacity at all is
// fully loaded.
func LoadPermille(sessions, free int) uint16 {
	sessions, free = max(sessions, 0), max(free, 0)
	if sessions+free == 0 {
		return 1000
	}
	return uint16((int64(sessions)*1000 + int64(sessions+free)/2) / int64(sessions+free))
}

// Static is a source that always gives the same values: a node whose grid is
// known and constant (a site on a green tariff), and tests.
type Static Reading

// Reading returns the fixed values, dated at.
func (s Static) Reading(_ context.Context, at time.Time) (Reading, error) {
	r := Reading(s)
	r.At = at
	if !r.HasCarbon && !r.HasRenewable {
		return Reading{}, ErrNoReading
	}
	return r, nil
}

// Clock is the part of time the package uses, so that tests drive a day in
// milliseconds instead of sleeping through it.
type Clock interface {
	Now() time.Time
	// NewTicker returns a channel that receives every d, and a function that
	// stops it.
	NewTicker(d time.Duration) (<-chan time.Time, func())
}

// SystemClock is the wall clock.
func SystemClock() Clock { return systemClock{} }

type systemClock struct{}

func (systemClock) Now() time.Time { return time.Now() }

func (systemClock) NewTicker(d time.Duration) (<-chan time.Time, func()) {
	t := time.NewTicker(d)
	return t.C, t.Stop
}
