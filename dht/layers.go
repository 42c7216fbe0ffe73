package dht

import (
	"maps"
	"slices"
)

// ChooseLayers picks the range [first, last) a node should serve when started
// with --layers auto: a contiguous window of min(maxLayers, totalLayers)
// layers placed where the network is weakest.
//
// The rule: per layer, the network's capacity is Snapshot.Capacity (the sum of
// the servers' rates). The window should cover the weakest layers, so windows
// are compared by how many layers of the lowest capacity they cover, then, on a
// tie, of the next lowest capacity, and so on; the window covering more of the
// weakest layers wins. Equivalently, it leaves the best possible set of layers
// uncovered (the lexicographically greatest sorted capacities outside it),
// which first of all maximises the network's bottleneck, the weakest layer
// nobody new serves. Remaining ties go to the smallest first, so an empty
// network fills from layer 0 and concurrent nodes with the same view agree.
//
// The caller computes maxLayers from its memory and should pass a snapshot
// without its own record (Snapshot.Without). maxLayers < 1 or totalLayers < 1
// gives (0, 0): nothing fits. Cost is O(totalLayers × distinct capacities).
func ChooseLayers(s Snapshot, totalLayers, maxLayers int) (first, last int) {
	if totalLayers < 1 || maxLayers < 1 {
		return 0, 0
	}
	w := min(maxLayers, totalLayers)
	capacity := s.Capacity(totalLayers)

	// rank[i] is the position of layer i's capacity among the distinct
	// capacities, weakest first; a window's key is its histogram over ranks.
	distinct := slices.Sorted(maps.Keys(setOf(capacity)))
	rank := make([]int, totalLayers)
	for i, c := range capacity {
		rank[i], _ = slices.BinarySearch(distinct, c)
	}
	hist := make([]int, len(distinct))
	for i := range w {
		hist[rank[i]]++
	}
	best := slices.Clone(hist)
	first = 0
	for a := 1; a+w <= totalLayers; a++ {
		hist[rank[a-1]]--
		hist[rank[a+w-1]]++
		// A strictly better key only: ties keep the smaller first.
		if slices.Compare(hist, best) > 0 {
			copy(best, hist)
			first = a
		}
	}
	return first, first + w
}

func setOf(xs []uint64) map[uint64]struct{} {
	m := make(map[uint64]struct{}, len(xs))
	for _, x := range xs {
		m[x] = struct{}{}
	}
	return m
}
