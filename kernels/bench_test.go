package kernels

import (
	"fmt"
	"math/rand/v2"
	"runtime"
	"testing"
)

// TinyLlama-1.1B: the shape the performance targets are stated for.
const (
	tlDim    = 2048
	tlLayers = 22
	tlKV     = 256 // 4 KV heads × 64
	tlFFN    = 5632
	tlVocab  = 32000
)

// randWeights fills a matrix with random blocks whose scales are small normal f16
// values, much faster than quantizing random floats and just as realistic for
// timing.
func randWeights(r *rand.Rand, dt DType, rows, cols int) []byte {
	rb, _ := dt.RowBytes(int64(cols))
	b := make([]byte, int(rb)*rows)
	for i := 0; i < len(b); i += 8 {
		v := r.Uint64()
		for j := 0; j < 8 && i+j < len(b); j++ {
			b[i+j] = byte(v >> (8 * j))
		}
	}
	scale := F32ToF16(0.001)
	ts := dt.TypeSize()
	for o := 0; o+ts <= len(b); o += ts {
		switch dt {
		case Q8_0, Q4_0:
			b[o], b[o+1] = byte(scale), byte(scale>>8)
		case Q4_K:
			b[o], b[o+1], b[o+2], b[o+3] = byte(scale), byte(scale>>8), byte(scale), byte(scale>>8)
		case Q6_K:
			b[o+208], b[o+209] = byte(scale), byte(scale>>8)
		case F16:
			for j := o; j < o+ts; j += 2 {
				b[j+1] &= 0x3b // keep values finite and moderate
			}
		case BF16:
			for j := o; j < o+ts; j += 2 {
				b[j+1] = 0x3c | b[j+1]&0x80
			}
		case F32:
			b[o+3] = 0x3c | b[o+3]&0x80
		}
	}
	return b
}

type benchMat struct {
	m     Matrix
	bytes int
	flops int
}

// tinyLlamaWeights builds the projection matrices of all layers plus the output
// head: 1.1 G weights, more than any cache, as in a real decode step.
func tinyLlamaWeights(b *testing.B, be Backend, dt DType) []benchMat {
	r := rand.New(rand.NewPCG(1, 1))
	shapes := [][2]int{{tlDim, tlDim}, {tlKV, tlDim}, {tlKV, tlDim}, {tlDim, tlDim}, {tlFFN, tlDim}, {tlFFN, tlDim}, {tlDim, tlFFN}}
	var ms []benchMat
	for range tlLayers {
		for _, s := range shapes {
			ms = append(ms, newBenchMat(b, be, r, dt, s[0], s[1]))
		}
	}
	return append(ms, newBenchMat(b, be, r, dt, tlVocab, tlDim))
}

func newBenchMat(b *testing.B, be Backend, r *rand.Rand, dt DType, rows, cols int) benchMat {
	data := randWeights(r, dt, rows, cols)
	m, err := be.NewMatrix(dt, rows, cols, data)
	if err != nil {
		b.Fatal(err)
	}
	return benchMat{m: m, bytes: len(data), flops: 2 * rows * cols}
}

// BenchmarkDecode runs one TinyLlama decode step's matrix-vector products per
// iteration and reports the weight bytes read per second against the triad
// bandwidth measured in the same run.
func BenchmarkDecode(b *testing.B) {
	for _, dt := range []DType{Q8_0, Q4_0, Q4_K, Q6_K, F16} {
		b.Run(dt.String(), func(b *testing.B) {
			be := newTestCPU(b)
			ms := tinyLlamaWeights(b, be, dt)
			runMatVecs(b, be, ms)
			ms = nil
			runtime.GC()
		})
	}
}

// BenchmarkMatVec is one matrix shape, replicated beyond the caches.
func BenchmarkMatVec(b *testing.B) {
	for _, dt := range allTypes {
		for _, sh := range [][2]int{{tlDim, tlDim}, {tlFFN, tlDim}, {tlDim, tlFFN}} {
			b.Run(fmt.Sprintf("%s/%dx%d", dt, sh[0], sh[1]), func(b *testing.B) {
				be := newTestCPU(b)
				r := rand.New(rand.NewPCG(2, 2))
				var ms []benchMat
				total := 0
				for total < 768<<20 {
					ms = append(ms, newBenchMat(b, be, r, dt, sh[0], sh[1]))
					total += ms[len(ms)-1].bytes
				}
				runMatVecs(b, be, ms)
			})
		}
	}
}

func runMatVecs(b *testing.B, be Backend, ms []benchMat) {
	x := randRow(rand.New(rand.NewPCG(3, 3)), tlFFN, 1)
	y := make([]float32, tlVocab)
	bytes := 0
	for _, m := range ms {
		bytes += m.bytes
	}
	// The machine is shared and its memory bandwidth drifts, so the triad runs right
	// before and right after the timed loop and the ratio uses their mean.
	before := MeasureBandwidth(runtime.NumCPU(), 0)
	for _, m := range ms[:min(len(ms), 8)] {
		be.MatMul(y, x, 1, m.m)
	}
	b.SetBytes(int64(bytes))
	b.ResetTimer()
	for b.Loop() {
		for _, m := range ms {
			be.MatMul(y, x, 1, m.m)
		}
	}
	rate := float64(bytes) * float64(b.N) / b.Elapsed().Seconds()
	b.StopTimer()
	bw := (before + MeasureBandwidth(runtime.NumCPU(), 0)) / 2
	b.ReportMetric(rate/1e9, "GB/s")
	b.ReportMetric(bw/1e9, "triad-GB/s")
	b.ReportMetric(rate/bw, "of-triad")
}

// BenchmarkPrefill is a batch of 128 tokens through the attention and FFN shapes.
func BenchmarkPrefill(b *testing.B) {
	for _, tc := range []struct {
		dt   DType
		blas bool
	}{{Q8_0, false}, {Q4_0, false}, {Q4_K, false}, {Q6_K, false}, {F32, false}, {F16, false}, {F32, true}, {F16, true}} {
		name := tc.dt.String()
		if tc.blas {
			name += "-blas"
		}
		b.Run(name, func(b *testing.B) {
			be := newTestCPU(b)
			if tc.blas {
				var err error
				if be, err = NewCPU(WithBLAS("")); err != nil {
					b.Fatal(err)
				}
				defer be.Close()
				if !be.(*cpu).blas.ok() {
					b.Skip("no OpenBLAS")
				}
			}
			runPrefill(b, be, tc.dt, 128)
		})
	}
}

// BenchmarkPrefillLong is a 512-token prompt: the tiles take tokens 128 at a time.
func BenchmarkPrefillLong(b *testing.B) {
	for _, dt := range []DType{Q8_0, Q4_K} {
		b.Run(dt.String(), func(b *testing.B) {
			runPrefill(b, newTestCPU(b), dt, 512)
		})
	}
}

func runPrefill(b *testing.B, be Backend, dt DType, n int) {
	r := rand.New(rand.NewPCG(4, 4))
	ms := []benchMat{newBenchMat(b, be, r, dt, tlDim, tlDim), newBenchMat(b, be, r, dt, tlFFN, tlDim), newBenchMat(b, be, r, dt, tlDim, tlFFN)}
	x := randRow(r, n*tlFFN, 1)
	y := make([]float32, n*tlFFN)
	flops := 0
	for _, m := range ms {
		flops += n * m.flops
	}
	b.ResetTimer()
	for b.Loop() {
		for _, m := range ms {
			be.MatMul(y, x, n, m.m)
		}
	}
	b.ReportMetric(float64(flops)*float64(b.N)/b.Elapsed().Seconds()/1e9, "GFLOP/s")
}

func BenchmarkTriad(b *testing.B) {
	for b.Loop() {
		bw := MeasureBandwidth(runtime.NumCPU(), 0)
		b.ReportMetric(bw/1e9, "GB/s")
	}
}

// BenchmarkAttend is one decode step's attention of one TinyLlama layer at a long
// context.
func BenchmarkAttend(b *testing.B) {
	for _, ctx := range []int{256, 2048} {
		b.Run(fmt.Sprint(ctx), func(b *testing.B) {
			be := newTestCPU(b)
			r := rand.New(rand.NewPCG(5, 5))
			a := Attention{N: 1, Pos0: ctx - 1, Heads: 32, KVHeads: 4, HeadDim: 64, Scale: 0.125,
				K: randRow(r, ctx*tlKV, 1), V: randRow(r, ctx*tlKV, 1)}
			q := randRow(r, tlDim, 1)
			dst := make([]float32, tlDim)
			for b.Loop() {
				be.Attend(dst, q, a)
			}
		})
	}
}
