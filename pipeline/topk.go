package pipeline

import "math"

// topK selects the largest logits with their ids, reusing its buffers so the last
// stage allocates nothing per token.
type topK struct {
	ids  []int32
	vals []float32
}

// of returns the k largest of logits, largest first (ties to the lower id), as
// ids and values valid until the next call.
func (t *topK) of(logits []float32, k int) ([]int32, []float32) {
	if cap(t.ids) < k {
		t.ids, t.vals = make([]int32, k), make([]float32, k)
	}
	ids, vals := t.ids[:0], t.vals[:0]
	// Insertion into a sorted window: k is small (tens) next to the vocabulary,
	// and most logits fall below the window's minimum and cost one comparison.
	for i, v := range logits {
		if len(ids) == k && v <= vals[k-1] {
			continue
		}
		j := len(ids)
		if j < k {
			ids, vals = append(ids, 0), append(vals, 0)
		} else {
			j = k - 1
		}
		for j > 0 && vals[j-1] < v {
			ids[j], vals[j] = ids[j-1], vals[j-1]
			j--
		}
		ids[j], vals[j] = int32(i), v
	}
	return ids, vals
}

// scatter writes sparse logits into a dense buffer whose other entries become
// -Inf: tokens the last stage did not send can never be sampled.
func scatter(dst []float32, ids []int32, vals []float32) {
	for i := range dst {
		dst[i] = float32(math.Inf(-1))
	}
	for i, id := range ids {
		dst[id] = vals[i]
	}
}
