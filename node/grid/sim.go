package grid

import (
	"context"
	"fmt"
	"hash/fnv"
	"math"
	"strings"
	"time"
)

// Zone is a simulated grid: a renewable share that rises with the sun and
// wobbles with the weather, and a carbon intensity that follows from it, with an
// evening peak when peaking plants run. It is a plausible shape for testnets,
// not a model of any real grid.
type Zone struct {
	Name string
	// Offset is the zone's local time minus UTC; the sun peaks at 12:00 local.
	Offset time.Duration
	// BaseRenewable is the renewable share without sun (wind, hydro).
	BaseRenewable float64
	// SolarPeak is what solar adds to the share at local noon; it follows a
	// half sine from 06:00 to 18:00 local.
	SolarPeak float64
	// FossilCarbon is the intensity, in gCO2eq/kWh, of the part that is not
	// renewable: about 400 for gas, 900 for coal.
	FossilCarbon float64
	// EveningPeak is how much dirtier the fossil part is at 19:00 local, as a
	// fraction, fading over a few hours either side.
	EveningPeak float64
	// Weather is the amplitude of the hour-to-hour variation of the renewable
	// share (wind, clouds), deterministic from the seed.
	Weather float64
}

// renewableCarbon is the lifecycle intensity of the renewable part (wind about
// 11, solar about 45, hydro about 24 g/kWh; IPCC AR5 medians), averaged.
const renewableCarbon = 30

// SimZones are three preset zones eight hours apart, so that over a UTC day each
// has its clean hours: "sim-east" (UTC+8, coal with a large solar fleet),
// "sim-central" (UTC+1, gas, wind and solar, cleanest on average) and "sim-west"
// (UTC−7, a mixed grid with strong solar).
func SimZones() []Zone {
	return []Zone{
		{Name: "sim-east", Offset: 8 * time.Hour, BaseRenewable: 0.15, SolarPeak: 0.45, FossilCarbon: 850, EveningPeak: 0.05, Weather: 0.05},
		{Name: "sim-central", Offset: time.Hour, BaseRenewable: 0.35, SolarPeak: 0.35, FossilCarbon: 450, EveningPeak: 0.15, Weather: 0.08},
		{Name: "sim-west", Offset: -7 * time.Hour, BaseRenewable: 0.20, SolarPeak: 0.50, FossilCarbon: 600, EveningPeak: 0.10, Weather: 0.06},
	}
}

// SimZone returns the preset zone of that name (case-insensitive).
func SimZone(name string) (Zone, error) {
	var names []string
	for _, z := range SimZones() {
		if strings.EqualFold(z.Name, name) {
			return z, nil
		}
		names = append(names, z.Name)
	}
	return Zone{}, fmt.Errorf("grid: no simulated zone %q (have %s)", name, strings.Join(names, ", "))
}

// Simulated is a Source giving a zone's simulated curve. It is a pure function
// of the zone, the seed and the time asked: a test runs a simulated day by
// asking for 24 hours, without waiting for them.
type Simulated struct {
	z    Zone
	seed uint64
	zone uint64 // hash of the zone's name, so zones' weather differs
}

// NewSimulated returns the simulated source of z, its weather drawn from seed.
func NewSimulated(z Zone, seed uint64) (*Simulated, error) {
	ok := func(x float64) bool { return finite(x) && x >= 0 }
	if !ok(z.BaseRenewable) || !ok(z.SolarPeak) || !ok(z.FossilCarbon) || !ok(z.EveningPeak) || !ok(z.Weather) ||
		z.BaseRenewable+z.SolarPeak > 1 || z.FossilCarbon > maxCarbon || z.Offset <= -day || z.Offset >= day {
		return nil, fmt.Errorf("grid: simulated zone %+v out of range", z)
	}
	h := fnv.New64a()
	h.Write([]byte(z.Name))
	return &Simulated{z: z, seed: seed, zone: h.Sum64()}, nil
}

// Zone is the simulated zone.
func (s *Simulated) Zone() Zone { return s.z }

// Reading returns the zone's carbon intensity and renewable share at at.
func (s *Simulated) Reading(_ context.Context, at time.Time) (Reading, error) {
	local := at.UTC().Add(s.z.Offset)
	h := float64(local.Sub(local.Truncate(day))) / float64(time.Hour) // 0 ≤ h < 24
	sun := max(0, math.Sin(math.Pi*(h-6)/12))
	r := s.z.BaseRenewable + s.z.SolarPeak*sun + s.z.Weather*s.weather(at)
	r = min(max(r, 0), 1)
	dh := math.Mod(h-19+36, 24) - 12 // hours from 19:00, in [−12, 12)
	peak := 1 + s.z.EveningPeak*math.Exp(-dh*dh/8)
	c := (1-r)*s.z.FossilCarbon*peak + r*renewableCarbon
	return Reading{At: at, Carbon: c, HasCarbon: true, Renewable: r, HasRenewable: true}, nil
}

// weather is smooth noise in [−1, 1]: a value drawn per UTC hour from the seed,
// eased between hours.
func (s *Simulated) weather(at time.Time) float64 {
	hours := float64(at.Unix()) / 3600
	k := math.Floor(hours)
	f := hours - k
	f = f * f * (3 - 2*f)
	a, b := s.noise(int64(k)), s.noise(int64(k)+1)
	return a + f*(b-a)
}

// noise is a uniform value in [−1, 1] for hour k (splitmix64).
func (s *Simulated) noise(k int64) float64 {
	x := s.seed ^ s.zone ^ uint64(k)*0x9e3779b97f4a7c15
	x ^= x >> 30
	x *= 0xbf58476d1ce4e5b9
	x ^= x >> 27
	x *= 0x94d049bb133111eb
	x ^= x >> 31
	return float64(x>>11)/float64(1<<52) - 1
}
