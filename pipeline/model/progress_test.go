package model

import (
	"bytes"
	"sync"
	"testing"

	"github.com/imece/imece/kernels"
)

// TestReportIdentify: the manifest hashed with progress reports is the one
// hashed without, and the reports climb to the total bytes of the weights.
func TestReportIdentify(t *testing.T) {
	big := bytes.Repeat([]byte{7}, 2*hashChunk+5) // three chunks
	tests := []struct {
		name    string
		tensors []Tensor
	}{
		{"no tensors", nil},
		{"one small", []Tensor{{Name: "a", Shape: []int64{3}, DType: kernels.F32, Data: make([]byte, 12)}}},
		{"chunked and small", []Tensor{
			{Name: "big", Shape: []int64{int64(len(big))}, DType: kernels.Q8_0, Data: big},
			{Name: "small", Shape: []int64{2}, DType: kernels.F32, Data: []byte{1, 2, 3, 4, 5, 6, 7, 8}},
			{Name: "empty", Shape: []int64{0}, DType: kernels.F32, Data: nil},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var total int64
			for _, x := range tt.tensors {
				total += int64(len(x.Data))
			}
			var mu sync.Mutex
			var calls int
			var last, lastTotal int64 = -1, -1
			got := newManifest(Config{}, [32]byte{}, tt.tensors, func(done, tot int64) {
				mu.Lock()
				defer mu.Unlock()
				if done < last {
					t.Errorf("progress went back from %d to %d", last, done)
				}
				calls++
				last, lastTotal = done, tot
			})
			want := NewManifest(Config{}, [32]byte{}, tt.tensors)
			if !bytes.Equal(got.Encode(), want.Encode()) {
				t.Error("manifest hashed in chunks differs")
			}
			if last != total || lastTotal != total || calls == 0 {
				t.Errorf("last report %d of %d after %d calls, want %d of %d", last, lastTotal, calls, total, total)
			}
		})
	}
}
