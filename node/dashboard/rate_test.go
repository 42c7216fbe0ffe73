package dashboard

import (
	"slices"
	"testing"
	"time"
)

func TestRateMeter(t *testing.T) {
	t0 := time.Unix(1_000_000, 0)
	tests := []struct {
		name   string
		events []struct{ at, n int } // seconds after t0, count
		now    int
		tail   []uint64 // the last len(tail) buckets of the series
		total  uint64
		rate10 float64
	}{
		{"empty", nil, 5, []uint64{0, 0, 0}, 0, 0},
		{"one second", []struct{ at, n int }{{3, 4}, {3, 6}}, 4, []uint64{0, 10}, 10, 1},
		{"current second not counted yet", []struct{ at, n int }{{4, 7}}, 4, []uint64{0, 0}, 7, 0},
		{"spread", []struct{ at, n int }{{1, 1}, {2, 2}, {3, 3}}, 4, []uint64{1, 2, 3}, 6, 0.6},
		{"old buckets expire", []struct{ at, n int }{{0, 50}, {rateWindow + 1, 5}}, rateWindow + 2, []uint64{0, 5}, 55, 0.5},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var m rateMeter
			for _, e := range tt.events {
				m.add(t0.Add(time.Duration(e.at)*time.Second), uint64(e.n))
			}
			series, total := m.series(t0.Add(time.Duration(tt.now) * time.Second))
			if len(series) != rateWindow {
				t.Fatalf("series of %d seconds", len(series))
			}
			if got := series[len(series)-len(tt.tail):]; !slices.Equal(got, tt.tail) {
				t.Errorf("series ends %v, want %v", got, tt.tail)
			}
			if sum := func() (s uint64) {
				for _, c := range series {
					s += c
				}
				return
			}(); tt.name == "old buckets expire" && sum != 5 {
				t.Errorf("series sums to %d: an expired bucket was counted", sum)
			}
			if total != tt.total {
				t.Errorf("total %d, want %d", total, tt.total)
			}
			if got := perSecond(series, 10); got != tt.rate10 {
				t.Errorf("rate over 10 s = %v, want %v", got, tt.rate10)
			}
		})
	}
}
