package model

import (
	"cmp"
	"crypto/sha256"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
)

// hashChunk is how many bytes of a tensor are hashed between two progress
// reports: small enough for a smooth bar, large enough to cost nothing.
const hashChunk = 16 << 20

// ReportIdentify makes the computation of the model's manifest and CIDs call
// progress with the bytes of weights hashed so far and their total. That
// computation hashes every byte of the weights on the first call of
// Manifest, CID or LayerCID (seconds for a model of gigabytes, the slow part
// of loading one), so a command can show a progress bar meanwhile. Call it
// before that first use; progress is called from several goroutines, never
// at once, the last time with done == total. A nil progress reports nothing.
func (m *Model) ReportIdentify(progress func(done, total int64)) {
	if m.ids != nil {
		m.ids.progress = progress
	}
}

// newManifest is NewManifest reporting progress (nil: none). It hashes the
// tensors' bytes in parallel, one tensor per goroutine, the largest first
// (SHA2-256 of one tensor is inherently sequential).
func newManifest(c Config, tokenizer [32]byte, tensors []Tensor, progress func(done, total int64)) *Manifest {
	mf := &Manifest{Config: c, Tokenizer: tokenizer, Tensors: make([]TensorEntry, len(tensors))}
	var total int64
	for i, t := range tensors {
		mf.Tensors[i] = TensorEntry{Name: t.Name, Shape: slices.Clone(t.Shape), DType: t.DType}
		total += int64(len(t.Data))
	}
	order := make([]int, len(tensors))
	for i := range order {
		order[i] = i
	}
	slices.SortStableFunc(order, func(a, b int) int { return cmp.Compare(len(tensors[b].Data), len(tensors[a].Data)) })
	var (
		next   atomic.Int64
		wg     sync.WaitGroup
		mu     sync.Mutex // serialises progress calls
		hashed int64
	)
	report := func(n int) {
		if progress == nil {
			return
		}
		mu.Lock()
		defer mu.Unlock()
		hashed += int64(n)
		progress(hashed, total)
	}
	for range min(runtime.GOMAXPROCS(0), len(tensors)) {
		wg.Go(func() {
			for {
				k := int(next.Add(1) - 1)
				if k >= len(order) {
					return
				}
				i := order[k]
				data := tensors[i].Data
				if progress == nil {
					mf.Tensors[i].Hash = sha256.Sum256(data)
					continue
				}
				h := sha256.New()
				for off := 0; off < len(data); off += hashChunk {
					end := min(off+hashChunk, len(data))
					h.Write(data[off:end])
					report(end - off)
				}
				h.Sum(mf.Tensors[i].Hash[:0])
			}
		})
	}
	wg.Wait()
	if progress != nil && total == 0 {
		progress(0, 0)
	}
	return mf
}
