package grid

import (
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Interpolation says what a series gives between two of its points.
type Interpolation int

const (
	// Step holds each point's values until the next point: right for data
	// that are averages over periods (the UK API's half hours, Electricity
	// Maps' hours), and the default.
	Step Interpolation = iota
	// Linear interpolates between neighbouring points: right for samples of
	// a continuous curve.
	Linear
)

// Bounds of grid data.
const (
	// MaxPoints bounds a series: a year of 5-minute values.
	MaxPoints = 120_000
	// maxCarbon rejects intensities no grid has (the dirtiest are near 1,100
	// g/kWh), which are unit mistakes (kg, lb/MWh) rather than data.
	maxCarbon = 5000
	day       = 24 * time.Hour
)

// point is one value of a series. In a daily profile at is the offset into
// the (UTC) day, as a time on 1970-01-01.
type point struct {
	at, end    time.Time // end is zero unless the data says when the value stops
	carbon     float64
	renewable  float64
	hasC, hasR bool
}

// series is a sorted time series of grid values, what File and HTTP keep and
// read from.
type series struct {
	points []point // sorted by at, unique
	daily  bool    // a profile repeated every UTC day
	interp Interpolation
	// validity is how long the last point holds when the data does not say.
	validity time.Duration
}

// newSeries sorts and checks points: at most MaxPoints, all absolute or all
// daily, values in range. Points at the same time merge, the later one winning
// field by field, so that a response listing a period twice is still usable.
func newSeries(pts []point, daily bool, interp Interpolation, validity time.Duration) (*series, error) {
	if len(pts) == 0 {
		return nil, fmt.Errorf("%w: no values", ErrFormat)
	}
	if len(pts) > MaxPoints {
		return nil, fmt.Errorf("%w: %d values, more than %d", ErrTooLarge, len(pts), MaxPoints)
	}
	for _, p := range pts {
		if p.hasC && !(p.carbon >= 0 && p.carbon <= maxCarbon) {
			return nil, fmt.Errorf("%w: carbon intensity %v g/kWh at %s", ErrFormat, p.carbon, p.at.Format(time.RFC3339))
		}
		if p.hasR && !(p.renewable >= 0 && p.renewable <= 1) {
			return nil, fmt.Errorf("%w: renewable share %v at %s", ErrFormat, p.renewable, p.at.Format(time.RFC3339))
		}
		if !p.hasC && !p.hasR {
			return nil, fmt.Errorf("%w: a value at %s without carbon intensity or renewable share", ErrFormat, p.at.Format(time.RFC3339))
		}
	}
	pts = slices.Clone(pts)
	slices.SortStableFunc(pts, func(a, b point) int { return a.at.Compare(b.at) })
	out := pts[:1]
	for _, p := range pts[1:] {
		last := &out[len(out)-1]
		if !p.at.Equal(last.at) {
			out = append(out, p)
			continue
		}
		if p.hasC {
			last.carbon, last.hasC = p.carbon, true
		}
		if p.hasR {
			last.renewable, last.hasR = p.renewable, true
		}
		if !p.end.IsZero() {
			last.end = p.end
		}
	}
	return &series{points: out, daily: daily, interp: interp, validity: validity}, nil
}

// at is the reading at t: the last point at or before t, or between it and the
// next by the series' interpolation. Before the first point, and after the last
// point's end (its own, or validity after it), there is no reading.
func (s *series) at(t time.Time) (Reading, error) {
	if s.daily {
		return s.atDaily(t)
	}
	pts := s.points
	i := lastAtOrBefore(pts, t)
	if i < 0 {
		return Reading{}, fmt.Errorf("%w: %s is before the series starts at %s", ErrNoReading, t.Format(time.RFC3339), pts[0].at.Format(time.RFC3339))
	}
	p := pts[i]
	if i == len(pts)-1 {
		end := p.end
		if end.IsZero() {
			end = p.at.Add(s.validity)
		}
		if !t.Before(end) {
			return Reading{}, fmt.Errorf("%w: the series ends at %s", ErrNoReading, end.Format(time.RFC3339))
		}
		return p.reading(p.at), nil
	}
	return s.between(p, pts[i+1], t, p.at), nil
}

// atDaily reads a daily profile: the offset of t into its UTC day, wrapping
// from the day's last point to its first.
func (s *series) atDaily(t time.Time) (Reading, error) {
	pts := s.points
	start := t.UTC().Truncate(day) // the day t falls in
	pos := time.Unix(0, 0).UTC().Add(t.Sub(start))
	i := lastAtOrBefore(pts, pos)
	var p, q point
	switch {
	case i < 0: // before the first point: the previous day's last one
		p, q = pts[len(pts)-1], pts[0]
		p.at = p.at.Add(-day)
	case i == len(pts)-1: // after the last point: it runs to the next day's first
		p, q = pts[i], pts[0]
		q.at = q.at.Add(day)
	default:
		p, q = pts[i], pts[i+1]
	}
	return s.between(p, q, pos, start.Add(p.at.Sub(time.Unix(0, 0).UTC()))), nil
}

// between reads at t between p and its successor q, dating the reading at.
func (s *series) between(p, q point, t time.Time, at time.Time) Reading {
	r := p.reading(at)
	if s.interp != Linear || !q.at.After(p.at) {
		return r
	}
	f := float64(t.Sub(p.at)) / float64(q.at.Sub(p.at))
	if p.hasC && q.hasC {
		r.Carbon = p.carbon + f*(q.carbon-p.carbon)
	}
	if p.hasR && q.hasR {
		r.Renewable = p.renewable + f*(q.renewable-p.renewable)
	}
	return r
}

func (p point) reading(at time.Time) Reading {
	return Reading{At: at, Carbon: p.carbon, HasCarbon: p.hasC, Renewable: p.renewable, HasRenewable: p.hasR}
}

// lastAtOrBefore returns the index of the last point at or before t, −1 if none.
func lastAtOrBefore(pts []point, t time.Time) int {
	i, found := slices.BinarySearchFunc(pts, t, func(p point, t time.Time) int { return p.at.Compare(t) })
	if found {
		return i
	}
	return i - 1
}

// parseTime reads a time of grid data: RFC 3339 (fractional seconds allowed),
// the same without seconds as the UK API writes it ("2018-01-20T12:00Z"), Unix
// seconds, or "HH:MM" for a daily profile (daily reports which).
func parseTime(s string) (t time.Time, daily bool, err error) {
	s = strings.TrimSpace(s)
	if h, m, ok := strings.Cut(s, ":"); ok && len(h) == 2 && len(m) == 2 {
		hh, err1 := strconv.Atoi(h)
		mm, err2 := strconv.Atoi(m)
		if err1 != nil || err2 != nil || hh < 0 || hh > 23 || mm < 0 || mm > 59 {
			return time.Time{}, false, fmt.Errorf("%w: time of day %q", ErrFormat, s)
		}
		return time.Unix(int64(hh*3600+mm*60), 0).UTC(), true, nil
	}
	if n, err := strconv.ParseInt(s, 10, 64); err == nil {
		if n < 0 || n > 1<<40 {
			return time.Time{}, false, fmt.Errorf("%w: Unix time %d", ErrFormat, n)
		}
		return time.Unix(n, 0).UTC(), false, nil
	}
	for _, layout := range []string{time.RFC3339, "2006-01-02T15:04Z07:00"} {
		if t, err := time.Parse(layout, s); err == nil {
			return t.UTC(), false, nil
		}
	}
	return time.Time{}, false, fmt.Errorf("%w: time %q: want RFC 3339, Unix seconds or HH:MM", ErrFormat, s)
}

// finite reports whether x is a usable number.
func finite(x float64) bool { return !math.IsNaN(x) && !math.IsInf(x, 0) }
