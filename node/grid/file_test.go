package grid

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func day1(h, m int) time.Time { return time.Date(2025, 6, 1, h, m, 0, 0, time.UTC) }

// reading is what a test expects: NaN for a missing value.
type reading struct{ carbon, renewable float64 }

func check(t *testing.T, src Source, at time.Time, want reading) {
	t.Helper()
	r, err := src.Reading(context.Background(), at)
	if err != nil {
		t.Fatalf("at %s: %v", at.Format(time.RFC3339), err)
	}
	same := func(got float64, has bool, want float64) bool {
		if math.IsNaN(want) {
			return !has
		}
		return has && math.Abs(got-want) < 1e-9
	}
	if !same(r.Carbon, r.HasCarbon, want.carbon) || !same(r.Renewable, r.HasRenewable, want.renewable) {
		t.Fatalf("at %s: got %+v, want %+v", at.Format(time.RFC3339), r, want)
	}
}

func noReading(t *testing.T, src Source, at time.Time) {
	t.Helper()
	if r, err := src.Reading(context.Background(), at); !errors.Is(err, ErrNoReading) {
		t.Fatalf("at %s: got %+v, %v; want ErrNoReading", at.Format(time.RFC3339), r, err)
	}
}

var nan = math.NaN()

// TestFileFormats: the CSV and JSON examples of doc.go hold the same series;
// each value holds until the next (Step) and the last for the validity.
func TestFileFormats(t *testing.T) {
	for _, name := range []string{"series.csv", "series.json"} {
		t.Run(name, func(t *testing.T) {
			f, err := NewFile(filepath.Join("testdata", name))
			if err != nil {
				t.Fatal(err)
			}
			noReading(t, f, day1(0, 0).Add(-time.Second))
			check(t, f, day1(0, 0), reading{300, 0.20})
			check(t, f, day1(5, 59), reading{300, 0.20})
			check(t, f, day1(6, 0), reading{250, 0.35})
			check(t, f, day1(12, 30), reading{100, 0.70})
			check(t, f, day1(18, 59), reading{280, nan})
			noReading(t, f, day1(19, 0)) // an hour after the last value
		})
	}
}

func TestFileLinear(t *testing.T) {
	f, err := NewFile(filepath.Join("testdata", "series.csv"), WithInterpolation(Linear), WithValidity(2*time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	check(t, f, day1(3, 0), reading{275, 0.275})
	check(t, f, day1(9, 0), reading{175, 0.525})
	// Renewables are unknown at 18:00: the step value of 12:00 holds.
	check(t, f, day1(15, 0), reading{190, 0.70})
	check(t, f, day1(19, 30), reading{280, nan})
	noReading(t, f, day1(20, 0))
}

func TestFileDailyProfile(t *testing.T) {
	f, err := NewFile(filepath.Join("testdata", "daily.csv"), WithInterpolation(Linear))
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range []int{0, 1, 400} { // any day
		base := day1(0, 0).AddDate(0, 0, d)
		check(t, f, base, reading{400, 0.10})
		check(t, f, base.Add(6*time.Hour), reading{250, 0.35})
		check(t, f, base.Add(12*time.Hour), reading{100, 0.60})
		check(t, f, base.Add(18*time.Hour), reading{250, 0.35}) // wraps to 00:00
	}
	step, err := NewFile(filepath.Join("testdata", "daily.csv"))
	if err != nil {
		t.Fatal(err)
	}
	check(t, step, day1(11, 59), reading{400, 0.10})
	check(t, step, day1(23, 59), reading{100, 0.60})
	r, _ := step.Reading(context.Background(), day1(3, 0))
	if !r.At.Equal(day1(0, 0)) {
		t.Fatalf("dated %v, want the day's 00:00", r.At)
	}
}

// TestAPIShapesInFiles: a saved response of each API reads like a series.
func TestAPIShapesInFiles(t *testing.T) {
	for _, tc := range []struct {
		file string
		at   time.Time
		want reading
	}{
		{"uk_intensity.json", day1(11, 45), reading{117, nan}}, // actual
		{"uk_intensity.json", day1(12, 15), reading{110, nan}}, // forecast where no actual yet
		{"uk_generation.json", day1(12, 0), reading{nan, 0.574}},
		{"uk_regional.json", day1(11, 40), reading{140, 0.50}},
		{"em_latest.json", day1(13, 0), reading{302, nan}},
		{"em_power_breakdown.json", day1(11, 0), reading{nan, 0.29}},
		{"em_history.json", day1(10, 30), reading{320, nan}},
	} {
		t.Run(tc.file, func(t *testing.T) {
			f, err := NewFile(filepath.Join("testdata", tc.file), WithValidity(3*time.Hour))
			if err != nil {
				t.Fatal(err)
			}
			check(t, f, tc.at, tc.want)
		})
	}
	// UK periods end when they say: no validity stretches them.
	f, _ := NewFile(filepath.Join("testdata", "uk_intensity.json"), WithValidity(10*time.Hour))
	noReading(t, f, day1(12, 30))
}

func TestFileRejects(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct {
		name, data string
		want       error
	}{
		{"empty", "", ErrFormat},
		{"no time column", "when,carbon_g_per_kwh\n2025-06-01T00:00:00Z,1\n", ErrFormat},
		{"no value column", "time,price\n2025-06-01T00:00:00Z,1\n", ErrFormat},
		{"header only", "time,carbon_g_per_kwh\n", ErrFormat},
		{"bad time", "time,carbon_g_per_kwh\nyesterday,1\n", ErrFormat},
		{"bad number", "time,carbon_g_per_kwh\n2025-06-01T00:00:00Z,lots\n", ErrFormat},
		{"NaN", "time,carbon_g_per_kwh\n2025-06-01T00:00:00Z,NaN\n", ErrFormat},
		{"negative carbon", "time,carbon_g_per_kwh\n2025-06-01T00:00:00Z,-1\n", ErrFormat},
		{"carbon in the wrong unit", "time,carbon_g_per_kwh\n2025-06-01T00:00:00Z,450000\n", ErrFormat},
		{"share above 1", "time,renewable_share\n2025-06-01T00:00:00Z,40\n", ErrFormat},
		{"a row with nothing", "time,carbon_g_per_kwh\n2025-06-01T00:00:00Z,\n", ErrFormat},
		{"ragged row", "time,carbon_g_per_kwh\n2025-06-01T00:00:00Z,1,2\n", ErrFormat},
		{"days and times of day", "time,carbon_g_per_kwh\n2025-06-01T00:00:00Z,1\n12:00,2\n", ErrFormat},
		{"hour 24", "time,carbon_g_per_kwh\n24:00,1\n", ErrFormat},
		{"JSON without points", `{"zone":"DE"}`, ErrFormat},
		{"JSON syntax", `{"points": [`, ErrFormat},
		{"JSON point without time", `{"points": [{"carbon_g_per_kwh": 1}]}`, ErrFormat},
		{"UK period ending before it starts", `{"data":[{"from":"2025-06-01T12:00Z","to":"2025-06-01T11:30Z","intensity":{"forecast":1}}]}`, ErrFormat},
		{"UK without values", `{"data":[{"from":"2025-06-01T12:00Z","to":"2025-06-01T12:30Z"}]}`, ErrFormat},
		{"EM without a date", `{"carbonIntensity": 100}`, ErrFormat},
		{"EM with a time of day", `{"carbonIntensity": 100, "datetime": "12:00"}`, ErrFormat},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(dir, strings.ReplaceAll(tc.name, " ", "_"))
			if err := os.WriteFile(path, []byte(tc.data), 0o600); err != nil {
				t.Fatal(err)
			}
			if _, err := NewFile(path); !errors.Is(err, tc.want) {
				t.Fatalf("got %v, want %v", err, tc.want)
			}
		})
	}
	if _, err := NewFile(filepath.Join(dir, "missing.csv")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("missing file: %v", err)
	}
	big := filepath.Join(dir, "big.csv")
	if err := os.WriteFile(big, bytes.Repeat([]byte("#\n"), MaxFileSize/2+1), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := NewFile(big); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("big file: %v", err)
	}
	if _, err := NewFile(filepath.Join("testdata", "series.csv"), WithHeader("a", "b")); err == nil {
		t.Fatal("an HTTP option accepted by a file")
	}
}

// TestFileReload: a changed file is read again; a broken change is logged and
// the previous version kept.
func TestFileReload(t *testing.T) {
	path := filepath.Join(t.TempDir(), "grid.csv")
	write := func(data string, mod time.Time) {
		t.Helper()
		if err := os.WriteFile(path, []byte(data), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Chtimes(path, mod, mod); err != nil {
			t.Fatal(err)
		}
	}
	write("time,carbon_g_per_kwh\n00:00,300\n", day1(0, 0))
	var logs bytes.Buffer
	f, err := NewFile(path, WithLogger(slog.New(slog.NewTextHandler(&logs, nil))))
	if err != nil {
		t.Fatal(err)
	}
	check(t, f, day1(10, 0), reading{300, nan})
	write("time,carbon_g_per_kwh\n00:00,120\n", day1(0, 1))
	check(t, f, day1(10, 0), reading{120, nan})
	write("time,carbon_g_per_kwh\n00:00,oops\n", day1(0, 2))
	check(t, f, day1(10, 0), reading{120, nan})
	check(t, f, day1(10, 0), reading{120, nan})
	if n := strings.Count(logs.String(), "grid file not reloaded"); n != 1 {
		t.Fatalf("%d warnings, want 1:\n%s", n, logs.String())
	}
	write("time,carbon_g_per_kwh\n00:00,90\n", day1(0, 3))
	check(t, f, day1(10, 0), reading{90, nan})
}

// TestSeriesMergesDuplicates: a time listed twice keeps the later values, field
// by field.
func TestSeriesMergesDuplicates(t *testing.T) {
	pts, daily, err := parseData([]byte("time,carbon_g_per_kwh,renewable_share\n2025-06-01T00:00:00Z,300,0.2\n2025-06-01T00:00:00Z,,0.3\n"))
	if err != nil {
		t.Fatal(err)
	}
	s, err := newSeries(pts, daily, Step, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if len(s.points) != 1 {
		t.Fatalf("%d points", len(s.points))
	}
	r, _ := s.at(day1(0, 30))
	if r.Carbon != 300 || r.Renewable != 0.3 {
		t.Fatalf("got %+v", r)
	}
}

func TestParseTime(t *testing.T) {
	for _, tc := range []struct {
		in    string
		want  time.Time
		daily bool
	}{
		{"2025-06-01T12:00:00Z", day1(12, 0), false},
		{"2025-06-01T14:00:00+02:00", day1(12, 0), false},
		{"2025-06-01T12:00:00.000Z", day1(12, 0), false},
		{"2025-06-01T12:00Z", day1(12, 0), false},
		{"1748779200", day1(12, 0), false},
		{" 07:30 ", time.Unix(7*3600+30*60, 0).UTC(), true},
	} {
		got, daily, err := parseTime(tc.in)
		if err != nil || !got.Equal(tc.want) || daily != tc.daily {
			t.Errorf("parseTime(%q) = %v, %v, %v", tc.in, got, daily, err)
		}
	}
	for _, in := range []string{"", "noon", "7:30", "12:60", "-5", "2025-06-01", "99999999999999"} {
		if _, _, err := parseTime(in); !errors.Is(err, ErrFormat) {
			t.Errorf("parseTime(%q): %v", in, err)
		}
	}
}

// FuzzParseData: no input makes the parsers panic, and whatever they accept
// makes a series that answers for any time.
//
//	go test ./node/grid -run '^$' -fuzz '^FuzzParseData$' -fuzztime 1m
func FuzzParseData(f *testing.F) {
	seeds, _ := filepath.Glob(filepath.Join("testdata", "*"))
	for _, s := range seeds {
		if data, err := os.ReadFile(s); err == nil {
			f.Add(data)
		}
	}
	f.Add([]byte(`{"data":[{"data":[]}]}`))
	f.Add([]byte(`{"history":[{"datetime":"2025-06-01T00:00:00Z","fossilFreePercentage":50}]}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		pts, daily, err := parseData(data)
		if err != nil {
			return
		}
		s, err := newSeries(pts, daily, Linear, time.Hour)
		if err != nil {
			return
		}
		for _, p := range s.points {
			for _, at := range []time.Time{p.at, p.at.Add(-time.Minute), p.at.Add(time.Minute), p.at.Add(48 * time.Hour)} {
				r, err := s.at(at)
				if err != nil {
					continue
				}
				if r.HasCarbon && !(r.Carbon >= 0 && r.Carbon <= maxCarbon) || r.HasRenewable && !(r.Renewable >= 0 && r.Renewable <= 1) {
					t.Fatalf("reading out of range: %+v", r)
				}
			}
		}
	})
}
