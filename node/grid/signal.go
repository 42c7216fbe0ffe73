package grid

import (
	"context"
	"fmt"
	"time"

	"github.com/imece/imece/ledger"
)

// Signal computes a node's P_grid from its grid source, the network's weights
// and its load.
type Signal struct {
	src     Source
	w       ledger.GridWeights
	ceiling float64
}

// SignalOption configures a Signal.
type SignalOption func(*Signal) error

// WithCarbonCeiling sets the intensity, in gCO2eq/kWh, that counts as fully
// dirty (default DefaultCarbonCeiling). Nodes compare their P_grid, so a network
// should keep one value.
func WithCarbonCeiling(gPerKWh float64) SignalOption {
	return func(s *Signal) error {
		if !finite(gPerKWh) || gPerKWh <= 0 {
			return fmt.Errorf("grid: carbon ceiling %v must be positive", gPerKWh)
		}
		s.ceiling = gPerKWh
		return nil
	}
}

// NewSignal returns the signal of src under weights w (the genesis's). A nil
// src is a node that knows nothing of its grid: it advertises the average grid.
func NewSignal(src Source, w ledger.GridWeights, opts ...SignalOption) (*Signal, error) {
	if sum := uint32(w.Load) + uint32(w.Carbon) + uint32(w.Renewable); sum != 1000 {
		return nil, fmt.Errorf("grid: weights %+v sum to %d, not 1000", w, sum)
	}
	s := &Signal{src: src, w: w, ceiling: DefaultCarbonCeiling}
	for _, o := range opts {
		if err := o(s); err != nil {
			return nil, err
		}
	}
	return s, nil
}

// Value is P_grid at a moment, with what it was computed from.
type Value struct {
	// At is the time the value is for.
	At time.Time
	// PGrid is P_grid in permille, what the node's record carries.
	PGrid uint16
	// Terms are the inputs of Score, normalised.
	Terms Terms
	// Reading is the source's answer, zero when it failed.
	Reading Reading
	// Err says why the source gave nothing; P_grid then assumes the average
	// grid. It is for logs: the value is usable either way.
	Err error
}

// At computes P_grid at time at for a node at load (permille). It always
// returns a usable value; a source failure shows in Value.Err.
func (s *Signal) At(ctx context.Context, at time.Time, load uint16) Value {
	v := Value{At: at, Terms: Terms{Load: min(load, 1000), NoCarbon: true, NoRenewable: true}}
	if s.src != nil {
		v.Reading, v.Err = s.src.Reading(ctx, at)
		if v.Err != nil {
			v.Reading = Reading{}
		}
	}
	if r := v.Reading; r.HasCarbon {
		v.Terms.Carbon, v.Terms.NoCarbon = CarbonPermille(r.Carbon, s.ceiling), false
	}
	if r := v.Reading; r.HasRenewable {
		v.Terms.Renewable, v.Terms.NoRenewable = SharePermille(r.Renewable), false
	}
	v.PGrid = Score(s.w, v.Terms)
	return v
}
