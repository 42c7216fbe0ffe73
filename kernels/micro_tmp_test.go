package kernels
import ("testing"; "math/rand/v2")
func BenchmarkMicroK(b *testing.B) {
	r := rand.New(rand.NewPCG(1,1))
	for _, dt := range []DType{Q4_K, Q6_K, Q4_0, Q8_0} {
		b.Run(dt.String(), func(b *testing.B) {
			w := randWeights(r, dt, 64, 2048)
			rb := len(w) / 64
			var a q8KAct; a.resize(2048)
			quantizeQ8KBlocks(&a, 0, randRow(r, 2048, 1))
			var a8 q8Act; a8.resize(2048)
			quantizeQ8Blocks(&a8, 0, randRow(r, 2048, 1))
			out := make([]float32, 64)
			b.SetBytes(int64(len(w)))
			for b.Loop() {
				for rr := 0; rr < 16; rr++ {
					switch dt {
					case Q4_K: q4KDotX4AVX2(&w[rr*rb], 16*rb, 8, &a.qs[0], &a.d[0], &a.bsums[0], &out[rr], 16)
					case Q6_K: q6KDotX4AVX2(&w[rr*rb], 16*rb, 8, &a.qs[0], &a.d[0], &a.bsums[0], &out[rr], 16)
					case Q4_0: q4_0DotX4VNNI(&w[rr*rb], 16*rb, 64, &a8.qs[0], &a8.d[0], &a8.sum[0], &out[rr], 16)
					case Q8_0: q8_0DotX4VNNI(&w[rr*rb], 16*rb, 64, &a8.qs[0], &a8.d[0], &a8.sum[0], &out[rr], 16)
					}
				}
			}
			b.ReportMetric(float64(64*2048)*float64(b.N)/b.Elapsed().Seconds()/1e9, "Gw/s")
		})
	}
}
