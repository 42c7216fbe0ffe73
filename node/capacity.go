package node

import (
	"bufio"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/imece/imece/kernels"
	"github.com/imece/imece/pipeline/llama"
	"github.com/imece/imece/pipeline/model"
)

// MeasureThroughput runs a short decode through layers [first, last) of m on be
// and returns the rate in layer-positions per second, the figure a node announces
// and route planners cost it by. It measures rather than estimates, because what
// matters is this machine, this backend and this model.
func MeasureThroughput(m *model.Model, be kernels.Backend, first, last int) (uint64, error) {
	st, err := llama.NewStage(m, be, llama.WithLayers(first, last))
	if err != nil {
		return 0, err
	}
	const warm, steps = 2, 16
	se, err := st.NewSession(warm + steps)
	if err != nil {
		return 0, err
	}
	c := m.Config
	x := make([]float32, c.Dim)
	for i := range x {
		x[i] = float32(i%7) * 0.01
	}
	var start time.Time
	for i := 0; i < warm+steps; i++ {
		if i == warm {
			start = time.Now()
		}
		if err := se.Forward(x); err != nil {
			return 0, err
		}
	}
	el := time.Since(start)
	rate := float64(steps*(last-first)) / max(el.Seconds(), 1e-9)
	return max(uint64(rate), 1), nil
}

// layersThatFit is how many layers of m this machine can hold: half the memory
// available now, over the bytes of one layer, since the page cache, the KV caches
// and the rest of the system need the other half.
func layersThatFit(m *model.Model) int {
	L := m.Config.Layers
	var perLayer int64
	for _, t := range m.Tensors {
		if strings.HasPrefix(t.Name, "blk.0.") {
			perLayer += int64(len(t.Data))
		}
	}
	avail := availableMemory()
	if perLayer == 0 || avail <= 0 {
		return L
	}
	return int(max(1, min(int64(L), avail/2/perLayer)))
}

// availableMemory reads MemAvailable from /proc/meminfo (Linux); elsewhere it asks
// the system (osAvailableMemory) and, where that has no answer, assumes 8 GiB.
func availableMemory() int64 {
	f, err := os.Open("/proc/meminfo")
	if err != nil {
		if n := osAvailableMemory(); n > 0 {
			return n
		}
		return 8 << 30
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), "MemAvailable:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
			if err == nil {
				return kb << 10
			}
		}
	}
	return 8 << 30
}
