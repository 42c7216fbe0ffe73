package dashboard

import (
	"sync"
	"time"
)

// rateWindow is how many seconds of token counts the dashboard keeps: the
// sparkline's width.
const rateWindow = 60

// rateMeter counts events in per-second buckets over the last rateWindow
// seconds. It is fed from the hot path, so it only adds under a short lock;
// it needs no goroutine, since a bucket is cleared when its second comes
// round again.
type rateMeter struct {
	mu     sync.Mutex
	total  uint64
	counts [rateWindow]uint64
	second [rateWindow]int64 // the Unix second each bucket counts
}

func (m *rateMeter) add(now time.Time, n uint64) {
	s := now.Unix()
	i := s % rateWindow
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.second[i] != s {
		m.second[i], m.counts[i] = s, 0
	}
	m.counts[i] += n
	m.total += n
}

// series returns the counts of the rateWindow whole seconds before now, oldest
// first, and the total since the start.
func (m *rateMeter) series(now time.Time) ([]uint64, uint64) {
	end := now.Unix()
	out := make([]uint64, rateWindow)
	m.mu.Lock()
	defer m.mu.Unlock()
	for k := range rateWindow {
		s := end - rateWindow + int64(k)
		if i := s % rateWindow; m.second[i] == s {
			out[k] = m.counts[i]
		}
	}
	return out, m.total
}

// perSecond is the mean rate over the last n seconds of a series.
func perSecond(series []uint64, n int) float64 {
	n = min(n, len(series))
	if n == 0 {
		return 0
	}
	var sum uint64
	for _, c := range series[len(series)-n:] {
		sum += c
	}
	return float64(sum) / float64(n)
}
