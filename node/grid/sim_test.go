package grid

import (
	"context"
	"testing"
	"time"
)

func simulated(t testing.TB, name string, seed uint64) *Simulated {
	t.Helper()
	z, err := SimZone(name)
	if err != nil {
		t.Fatal(err)
	}
	s, err := NewSimulated(z, seed)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// TestSimulatedIsDeterministic: the same zone, seed and time give the same
// reading; another seed changes the weather only.
func TestSimulatedIsDeterministic(t *testing.T) {
	ctx := context.Background()
	a, b, c := simulated(t, "sim-central", 1), simulated(t, "sim-central", 1), simulated(t, "sim-central", 2)
	differ := 0
	for h := range 48 {
		at := day1(0, 0).Add(time.Duration(h)*time.Hour + 17*time.Minute)
		ra, _ := a.Reading(ctx, at)
		rb, _ := b.Reading(ctx, at)
		rc, _ := c.Reading(ctx, at)
		if ra != rb {
			t.Fatalf("same seed, different readings at %v: %+v %+v", at, ra, rb)
		}
		if ra != rc {
			differ++
		}
		if !ra.HasCarbon || !ra.HasRenewable || ra.Renewable < 0 || ra.Renewable > 1 || ra.Carbon < renewableCarbon || ra.Carbon > 1000 {
			t.Fatalf("reading out of range: %+v", ra)
		}
	}
	if differ < 40 {
		t.Fatalf("another seed changed only %d of 48 hours", differ)
	}
}

// TestSimulatedShape: each zone is cleanest around its local noon and
// dirtiest at night, and the three presets take turns at being the cleanest.
func TestSimulatedShape(t *testing.T) {
	ctx := context.Background()
	sig := func(s *Simulated, at time.Time) uint16 {
		g, _ := NewSignal(s, defaultWeights)
		return g.At(ctx, at, 0).PGrid
	}
	greenest := map[string]int{}
	for _, z := range SimZones() {
		s, err := NewSimulated(z, 7)
		if err != nil {
			t.Fatal(err)
		}
		noon := day1(12, 0).Add(-z.Offset)
		midnight := noon.Add(12 * time.Hour)
		if n, m := sig(s, noon), sig(s, midnight); n <= m+100 {
			t.Errorf("%s: P_grid %d at local noon, %d at midnight", z.Name, n, m)
		}
		rn, _ := s.Reading(ctx, noon)
		rm, _ := s.Reading(ctx, midnight)
		if rn.Renewable <= rm.Renewable || rn.Carbon >= rm.Carbon {
			t.Errorf("%s: noon %+v, midnight %+v", z.Name, rn, rm)
		}
	}
	zones := SimZones()
	for h := range 24 {
		at := day1(h, 30)
		best, bestP := "", uint16(0)
		for _, z := range zones {
			s, _ := NewSimulated(z, 7)
			if p := sig(s, at); p > bestP {
				best, bestP = z.Name, p
			}
		}
		greenest[best]++
	}
	for _, z := range zones {
		if greenest[z.Name] < 3 {
			t.Errorf("%s is the greenest zone in %d hours of 24: %v", z.Name, greenest[z.Name], greenest)
		}
	}
}

func TestSimZones(t *testing.T) {
	if z, err := SimZone("SIM-West"); err != nil || z.Name != "sim-west" {
		t.Fatalf("got %+v, %v", z, err)
	}
	if _, err := SimZone("atlantis"); err == nil {
		t.Fatal("unknown zone accepted")
	}
	for _, bad := range []Zone{
		{BaseRenewable: 0.6, SolarPeak: 0.6, FossilCarbon: 500},
		{BaseRenewable: -0.1, FossilCarbon: 500},
		{FossilCarbon: 1e9},
		{FossilCarbon: 500, Offset: 25 * time.Hour},
	} {
		if _, err := NewSimulated(bad, 1); err == nil {
			t.Errorf("zone %+v accepted", bad)
		}
	}
}
