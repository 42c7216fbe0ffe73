package grid

import (
	"bytes"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"
)

// This file reads the shapes grid data comes in: the native JSON and CSV time
// series (doc.go documents them) and the responses of the common
// carbon-intensity APIs. All of them become points of a series.

// parseData reads grid data in any of the supported shapes: JSON (native or an
// API's) when it starts with '{', CSV otherwise.
func parseData(data []byte) (pts []point, daily bool, err error) {
	if t := bytes.TrimLeft(data, " \t\r\n\ufeff"); len(t) > 0 && t[0] == '{' {
		return parseJSON(data)
	}
	return parseCSV(data)
}

// document is the union of the JSON shapes understood. Unknown fields are
// ignored: APIs add fields over time.
type document struct {
	// Native: {"points": [...]}.
	Points []nativePoint `json:"points"`

	// The UK Carbon Intensity API (api.carbonintensity.org.uk): "data" is a
	// list of periods (/intensity, /intensity/{from}/fw24h, /regional/...) or
	// one period (/generation).
	Data json.RawMessage `json:"data"`

	// Electricity Maps (api.electricitymaps.com/v3): /carbon-intensity/latest
	// and /power-breakdown/latest answer one object; /history and /forecast a
	// list of them.
	emPoint
	History  []emPoint `json:"history"`
	Forecast []emPoint `json:"forecast"`
}

type nativePoint struct {
	Time             string   `json:"time"`
	Carbon           *float64 `json:"carbon_g_per_kwh"`
	RenewableShare   *float64 `json:"renewable_share"`
	RenewablePercent *float64 `json:"renewable_percent"`
}

type emPoint struct {
	Datetime        string   `json:"datetime"`
	CarbonIntensity *float64 `json:"carbonIntensity"`
	// RenewablePercentage counts wind, solar, hydro, biomass and geothermal;
	// FossilFreePercentage adds nuclear. R is the renewable share, so the
	// latter is used only when the former is absent (an upper bound).
	RenewablePercentage  *float64 `json:"renewablePercentage"`
	FossilFreePercentage *float64 `json:"fossilFreePercentage"`
}

func (e emPoint) empty() bool {
	return e.CarbonIntensity == nil && e.RenewablePercentage == nil && e.FossilFreePercentage == nil
}

type ukPeriod struct {
	From      string `json:"from"`
	To        string `json:"to"`
	Intensity *struct {
		Forecast *float64 `json:"forecast"`
		Actual   *float64 `json:"actual"`
	} `json:"intensity"`
	GenerationMix []struct {
		Fuel string   `json:"fuel"`
		Perc *float64 `json:"perc"`
	} `json:"generationmix"`
	// Data nests the periods of one region (/regional/regionid/{id},
	// /regional/postcode/{pc}).
	Data []ukPeriod `json:"data"`
}

// ukRenewable reports whether a fuel of the UK API's generation mix is
// renewable; the others are gas, coal, nuclear, imports and other.
func ukRenewable(fuel string) bool {
	switch strings.ToLower(fuel) {
	case "biomass", "hydro", "solar", "wind":
		return true
	}
	return false
}

func parseJSON(data []byte) ([]point, bool, error) {
	var doc document
	if err := json.Unmarshal(data, &doc); err != nil {
		return nil, false, fmt.Errorf("%w: %v", ErrFormat, err)
	}
	switch {
	case doc.Points != nil:
		return nativePoints(doc.Points)
	case len(doc.Data) > 0 && string(doc.Data) != "null":
		pts, err := ukPoints(doc.Data)
		return pts, false, err
	case doc.History != nil || doc.Forecast != nil:
		var pts []point
		for _, e := range append(doc.History, doc.Forecast...) {
			p, err := e.point()
			if err != nil {
				return nil, false, err
			}
			pts = append(pts, p)
		}
		return pts, false, nil
	case !doc.emPoint.empty():
		p, err := doc.emPoint.point()
		return []point{p}, false, err
	}
	return nil, false, fmt.Errorf("%w: no carbon intensity or renewable share found (want the native shape, the UK Carbon Intensity API's or Electricity Maps')", ErrFormat)
}

func nativePoints(in []nativePoint) ([]point, bool, error) {
	var pts []point
	var daily bool
	for i, np := range in {
		t, d, err := parseTime(np.Time)
		if err != nil {
			return nil, false, fmt.Errorf("point %d: %w", i, err)
		}
		if i > 0 && d != daily {
			return nil, false, fmt.Errorf("%w: point %d: times of day (HH:MM) and dates mixed", ErrFormat, i)
		}
		daily = d
		p := point{at: t}
		if np.Carbon != nil {
			p.carbon, p.hasC = *np.Carbon, true
		}
		switch {
		case np.RenewableShare != nil:
			p.renewable, p.hasR = *np.RenewableShare, true
		case np.RenewablePercent != nil:
			p.renewable, p.hasR = *np.RenewablePercent/100, true
		}
		pts = append(pts, p)
	}
	return pts, daily, nil
}

func (e emPoint) point() (point, error) {
	t, err := parseInstant(e.Datetime)
	if err != nil {
		return point{}, fmt.Errorf("datetime: %w", err)
	}
	p := point{at: t}
	if e.CarbonIntensity != nil {
		p.carbon, p.hasC = *e.CarbonIntensity, true
	}
	switch {
	case e.RenewablePercentage != nil:
		p.renewable, p.hasR = *e.RenewablePercentage/100, true
	case e.FossilFreePercentage != nil:
		p.renewable, p.hasR = *e.FossilFreePercentage/100, true
	}
	return p, nil
}

func ukPoints(raw json.RawMessage) ([]point, error) {
	var periods []ukPeriod
	if err := json.Unmarshal(raw, &periods); err != nil {
		var one ukPeriod
		if err := json.Unmarshal(raw, &one); err != nil {
			return nil, fmt.Errorf("%w: data: %v", ErrFormat, err)
		}
		periods = []ukPeriod{one}
	}
	// A regional answer nests its periods under the region; take the first
	// region's, as one node draws from one region.
	if len(periods) > 0 && periods[0].From == "" && len(periods[0].Data) > 0 {
		periods = periods[0].Data
	}
	var pts []point
	for _, up := range periods {
		from, err := parseInstant(up.From)
		if err != nil {
			return nil, err
		}
		to, err := parseInstant(up.To)
		if err != nil {
			return nil, err
		}
		if !to.After(from) {
			return nil, fmt.Errorf("%w: period from %s to %s", ErrFormat, up.From, up.To)
		}
		p := point{at: from, end: to}
		if in := up.Intensity; in != nil {
			switch {
			case in.Actual != nil:
				p.carbon, p.hasC = *in.Actual, true
			case in.Forecast != nil:
				p.carbon, p.hasC = *in.Forecast, true
			}
		}
		if len(up.GenerationMix) > 0 {
			var sum float64
			for _, g := range up.GenerationMix {
				if g.Perc == nil {
					continue
				}
				if *g.Perc < 0 || *g.Perc > 100 {
					return nil, fmt.Errorf("%w: %s at %v%%", ErrFormat, g.Fuel, *g.Perc)
				}
				if ukRenewable(g.Fuel) {
					sum += *g.Perc
				}
			}
			// The percentages are rounded and may add up to a little over 100.
			p.renewable, p.hasR = min(sum/100, 1), true
		}
		if p.hasC || p.hasR {
			pts = append(pts, p)
		}
	}
	if len(pts) == 0 {
		return nil, fmt.Errorf("%w: no period with an intensity or a generation mix", ErrFormat)
	}
	return pts, nil
}

// CSV columns, matched case-insensitively; others are ignored.
const (
	colTime             = "time"
	colCarbon           = "carbon_g_per_kwh"
	colRenewableShare   = "renewable_share"
	colRenewablePercent = "renewable_percent"
)

func parseCSV(data []byte) ([]point, bool, error) {
	r := csv.NewReader(bytes.NewReader(bytes.TrimPrefix(data, []byte("\ufeff"))))
	r.Comment = '#'
	r.TrimLeadingSpace = true
	r.ReuseRecord = true
	header, err := r.Read()
	if err != nil {
		return nil, false, fmt.Errorf("%w: CSV header: %v", ErrFormat, err)
	}
	cols := map[string]int{}
	for i, h := range header {
		cols[strings.ToLower(strings.TrimSpace(h))] = i
	}
	ti, ok := cols[colTime]
	if !ok {
		return nil, false, fmt.Errorf("%w: CSV without a %q column", ErrFormat, colTime)
	}
	ci, hasC := cols[colCarbon]
	ri, hasR := cols[colRenewableShare]
	scale := 1.0
	if !hasR {
		ri, hasR = cols[colRenewablePercent]
		scale = 0.01
	}
	if !hasC && !hasR {
		return nil, false, fmt.Errorf("%w: CSV without a %q, %q or %q column", ErrFormat, colCarbon, colRenewableShare, colRenewablePercent)
	}
	var pts []point
	var daily bool
	for line := 2; ; line++ {
		rec, err := r.Read()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, false, fmt.Errorf("%w: CSV: %v", ErrFormat, err)
		}
		if len(pts) >= MaxPoints {
			return nil, false, fmt.Errorf("%w: more than %d rows", ErrTooLarge, MaxPoints)
		}
		t, d, err := parseTime(rec[ti])
		if err != nil {
			return nil, false, fmt.Errorf("row %d: %w", line, err)
		}
		if len(pts) > 0 && d != daily {
			return nil, false, fmt.Errorf("%w: row %d: times of day (HH:MM) and dates mixed", ErrFormat, line)
		}
		daily = d
		p := point{at: t}
		if hasC {
			if p.carbon, p.hasC, err = number(rec[ci], 1); err != nil {
				return nil, false, fmt.Errorf("row %d: %w", line, err)
			}
		}
		if hasR {
			if p.renewable, p.hasR, err = number(rec[ri], scale); err != nil {
				return nil, false, fmt.Errorf("row %d: %w", line, err)
			}
		}
		pts = append(pts, p)
	}
	return pts, daily, nil
}

// number reads an optional decimal cell: empty means unknown.
func number(s string, scale float64) (float64, bool, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return 0, false, nil
	}
	v, err := strconv.ParseFloat(s, 64)
	if err != nil || !finite(v) {
		return 0, false, fmt.Errorf("%w: number %q", ErrFormat, s)
	}
	return v * scale, true, nil
}

// parseInstant reads a date and time as parseTime does, refusing times of day.
func parseInstant(s string) (time.Time, error) {
	t, daily, err := parseTime(s)
	if err == nil && daily {
		err = fmt.Errorf("%w: %q is a time of day, not a date and time", ErrFormat, s)
	}
	return t, err
}
