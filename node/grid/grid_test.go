package grid

import (
	"context"
	"errors"
	"math"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/imece/imece/ledger"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

var defaultWeights = ledger.DefaultGenesis().Grid // 300, 400, 300

func TestScore(t *testing.T) {
	for _, tc := range []struct {
		name  string
		w     ledger.GridWeights
		terms Terms
		want  uint16
	}{
		{"idle, clean, all renewable", defaultWeights, Terms{Load: 0, Carbon: 0, Renewable: 1000}, 1000},
		{"saturated, dirty, no renewables", defaultWeights, Terms{Load: 1000, Carbon: 1000, Renewable: 0}, 0},
		// 0.3·0.5 + 0.4·0.75 + 0.3·0.4 = 0.15 + 0.3 + 0.12
		{"the formula", defaultWeights, Terms{Load: 500, Carbon: 250, Renewable: 400}, 570},
		// 300·999 + 400·999 + 300·1 = 699,600 → 699.6 → 700
		{"rounds half up", defaultWeights, Terms{Load: 1, Carbon: 1, Renewable: 1}, 700},
		{"out-of-range terms are clamped", defaultWeights, Terms{Load: 5000, Carbon: 5000, Renewable: 5000}, 300},
		{"load only", ledger.GridWeights{Load: 1000}, Terms{Load: 250, Carbon: 1000}, 750},
		// Carbon alone gets w2+w3: 0.3·1 + 0.7·(1−0.2)
		{"no renewable share: its weight goes to carbon", defaultWeights, Terms{Carbon: 200, NoRenewable: true}, 860},
		// Renewables alone get w2+w3: 0.3·1 + 0.7·0.6
		{"no carbon: its weight goes to renewables", defaultWeights, Terms{Renewable: 600, NoCarbon: true}, 720},
		// 0.3 + 0.4·(1 − 480/800) + 0.3·0.3 = 0.3 + 0.16 + 0.09
		{"neither: the average grid", defaultWeights, Terms{NoCarbon: true, NoRenewable: true}, 550},
		{"neither, loaded", defaultWeights, Terms{Load: 1000, NoCarbon: true, NoRenewable: true}, 250},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := Score(tc.w, tc.terms); got != tc.want {
				t.Fatalf("Score = %d, want %d", got, tc.want)
			}
		})
	}
}

// TestScoreMatchesTheFormula: over a grid of inputs, the integer score is the
// real formula rounded, never above 1000, and monotone in each term.
func TestScoreMatchesTheFormula(t *testing.T) {
	for _, w := range []ledger.GridWeights{defaultWeights, {Load: 1000}, {Carbon: 1000}, {Renewable: 1000}, {Load: 333, Carbon: 333, Renewable: 334}} {
		for l := uint16(0); l <= 1000; l += 50 {
			for c := uint16(0); c <= 1000; c += 50 {
				for r := uint16(0); r <= 1000; r += 50 {
					got := Score(w, Terms{Load: l, Carbon: c, Renewable: r})
					exact := (float64(w.Load)*(1000-float64(l)) + float64(w.Carbon)*(1000-float64(c)) + float64(w.Renewable)*float64(r)) / 1000
					if math.Abs(float64(got)-exact) > 0.5 || got > 1000 {
						t.Fatalf("Score(%+v, %d, %d, %d) = %d, want %.1f", w, l, c, r, got, exact)
					}
					if l > 0 && Score(w, Terms{Load: l - 50, Carbon: c, Renewable: r}) < got {
						t.Fatalf("more load scored higher")
					}
				}
			}
		}
	}
}

func TestNormalisation(t *testing.T) {
	for _, tc := range []struct {
		g    float64
		want uint16
	}{{0, 0}, {-5, 0}, {400, 500}, {800, 1000}, {1200, 1000}, {1, 1}, {math.NaN(), 1000}, {math.Inf(1), 1000}} {
		if got := CarbonPermille(tc.g, DefaultCarbonCeiling); got != tc.want {
			t.Errorf("CarbonPermille(%v) = %d, want %d", tc.g, got, tc.want)
		}
	}
	if got := CarbonPermille(100, 0); got != 1000 {
		t.Errorf("zero ceiling: %d", got)
	}
	for _, tc := range []struct {
		s    float64
		want uint16
	}{{0, 0}, {0.4174, 417}, {0.4175, 418}, {1, 1000}, {1.5, 1000}, {-1, 0}, {math.NaN(), 0}} {
		if got := SharePermille(tc.s); got != tc.want {
			t.Errorf("SharePermille(%v) = %d, want %d", tc.s, got, tc.want)
		}
	}
	for _, tc := range []struct {
		sessions, free int
		want           uint16
	}{{0, 8, 0}, {2, 6, 250}, {8, 0, 1000}, {1, 2, 333}, {2, 1, 667}, {0, 0, 1000}, {-1, 4, 0}} {
		if got := LoadPermille(tc.sessions, tc.free); got != tc.want {
			t.Errorf("LoadPermille(%d, %d) = %d, want %d", tc.sessions, tc.free, got, tc.want)
		}
	}
}

func TestStatic(t *testing.T) {
	at := time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)
	r, err := Static{Carbon: 50, HasCarbon: true}.Reading(context.Background(), at)
	if err != nil || !r.At.Equal(at) || r.Carbon != 50 || r.HasRenewable {
		t.Fatalf("got %+v, %v", r, err)
	}
	if _, err := (Static{}).Reading(context.Background(), at); !errors.Is(err, ErrNoReading) {
		t.Fatalf("empty static: %v", err)
	}
}

func TestSignal(t *testing.T) {
	ctx := context.Background()
	at := time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)
	green := Static{Carbon: 40, HasCarbon: true, Renewable: 0.9, HasRenewable: true}
	s, err := NewSignal(green, defaultWeights)
	if err != nil {
		t.Fatal(err)
	}
	// 0.3·(1−0.2) + 0.4·(1−0.05) + 0.3·0.9 = 0.24 + 0.38 + 0.27
	v := s.At(ctx, at, 200)
	if v.PGrid != 890 || v.Err != nil || v.Terms != (Terms{Load: 200, Carbon: 50, Renewable: 900}) || !v.At.Equal(at) {
		t.Fatalf("got %+v", v)
	}
	if v := s.At(ctx, at, 9999); v.Terms.Load != 1000 || v.PGrid != 650 {
		t.Fatalf("overload: %+v", v)
	}

	// A failing source: the average grid, and the error for the log.
	broken, _ := NewSignal(failing{}, defaultWeights)
	if v := broken.At(ctx, at, 0); v.PGrid != 550 || !errors.Is(v.Err, ErrUnavailable) || v.Reading != (Reading{}) {
		t.Fatalf("failing source: %+v", v)
	}
	// No source at all: the same, without an error.
	none, _ := NewSignal(nil, defaultWeights)
	if v := none.At(ctx, at, 0); v.PGrid != 550 || v.Err != nil {
		t.Fatalf("no source: %+v", v)
	}

	// The ceiling is the network's choice: at 400 g/kWh, 40 g/kWh is C = 0.1.
	strict, _ := NewSignal(green, defaultWeights, WithCarbonCeiling(400))
	if v := strict.At(ctx, at, 200); v.Terms.Carbon != 100 || v.PGrid != 870 {
		t.Fatalf("ceiling 400: %+v", v)
	}
	if _, err := NewSignal(green, ledger.GridWeights{Load: 1}); err == nil {
		t.Fatal("weights not summing to 1000 accepted")
	}
	if _, err := NewSignal(green, defaultWeights, WithCarbonCeiling(0)); err == nil {
		t.Fatal("zero ceiling accepted")
	}
}

// failing is a source that is always down.
type failing struct{}

func (failing) Reading(context.Context, time.Time) (Reading, error) {
	return Reading{}, ErrUnavailable
}

func TestPlanWeight(t *testing.T) {
	if w := PlanWeight(nil); w != DefaultPlanWeight {
		t.Fatalf("default network: %v", w)
	}
	g := ledger.DefaultGenesis()
	g.Grid = ledger.GridWeights{Load: 1000}
	if w := PlanWeight(g); w != 0 {
		t.Fatalf("load-only network: %v", w)
	}
	g.Grid = ledger.GridWeights{Load: 900, Renewable: 100}
	if w := PlanWeight(g); w != DefaultPlanWeight {
		t.Fatalf("network with some renewable weight: %v", w)
	}
	if PlanOption(nil) == nil {
		t.Fatal("no plan option")
	}
}
