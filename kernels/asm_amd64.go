//go:build amd64

package kernels

// The assembly kernels (*_amd64.s). Callers check every length first: the kernels
// trust their arguments.

//go:noescape
func q8_0DotX4VNNI(w *byte, stride, nb int, aq *int8, ad *float32, as *int32, out *float32, ostride int)

//go:noescape
func q8_0DotX4AVX2(w *byte, stride, nb int, aq *int8, ad *float32, as *int32, out *float32, ostride int)

//go:noescape
func q4_0DotX4VNNI(w *byte, stride, nb int, aq *int8, ad *float32, as *int32, out *float32, ostride int)

//go:noescape
func q4_0DotX4AVX2(w *byte, stride, nb int, aq *int8, ad *float32, as *int32, out *float32, ostride int)

//go:noescape
func gemmQ8_0VNNI(w *byte, wstride, nb int, acts *int8, sa *float32, corr *int32, kstride int, out *float32, ostride, ntok int)

//go:noescape
func gemmQ4_0VNNI(w *byte, wstride, nb int, acts *int8, sa *float32, corr *int32, kstride int, out *float32, ostride, ntok int)

//go:noescape
func gemmQ8_0VNNIAdd(w *byte, wstride, nb int, acts *int8, sa *float32, corr *int32, kstride int, out *float32, ostride, ntok int)

//go:noescape
func gemmQ4_0VNNIAdd(w *byte, wstride, nb int, acts *int8, sa *float32, corr *int32, kstride int, out *float32, ostride, ntok int)

//go:noescape
func q4KDotX4AVX2(w *byte, stride, nb int, aq *int8, ad *float32, bsums *int16, out *float32, ostride int)

//go:noescape
func q6KDotX4AVX2(w *byte, stride, nb int, aq *int8, ad *float32, bsums *int16, out *float32, ostride int)

//go:noescape
func quantQ8AVX2(x *float32, nb int, qs *int8, d *float32, sum *int32)

//go:noescape
func dotRowsAVX2(q *float32, k *float32, kstride, n, hd int, out *float32, scale float32) float32

//go:noescape
func axpyRowsAVX2(out *float32, p *float32, v *float32, vstride, n, hd int)

//go:noescape
func expSubAVX2(x *float32, n int, m float32) float32

//go:noescape
func f16ToF32AVX2(dst *float32, src *byte, n int)

//go:noescape
func dotBF16AVX2(w *byte, x *float32, n int) float32

//go:noescape
func f32DotX4AVX2(w *byte, stride, n int, x *float32, out *float32, ostride int)

//go:noescape
func f16DotX4AVX2(w *byte, stride, n int, x *float32, out *float32, ostride int)

//go:noescape
func bf16DotX4AVX2(w *byte, stride, n int, x *float32, out *float32, ostride int)

//go:noescape
func gemmF32x512(w *byte, wstride, k int, x *float32, xstride int, out *float32, ostride int)

//go:noescape
func gemmF32x512Add(w *byte, wstride, k int, x *float32, xstride int, out *float32, ostride int)

//go:noescape
func gemmF16x512(w *byte, wstride, k int, x *float32, xstride int, out *float32, ostride int)

//go:noescape
func gemmF16x512Add(w *byte, wstride, k int, x *float32, xstride int, out *float32, ostride int)

//go:noescape
func gemmQ4KVNNI(w *byte, wstride, nsb int, acts *int8, sa *float32, asum *float32, kstride, sstride int, out *float32, ostride, ntok int)

//go:noescape
func gemmQ4KVNNIAdd(w *byte, wstride, nsb int, acts *int8, sa *float32, asum *float32, kstride, sstride int, out *float32, ostride, ntok int)

//go:noescape
func gemmQ6KVNNI(w *byte, wstride, nsb int, acts *int8, sa *float32, asum *float32, kstride, sstride int, out *float32, ostride, ntok int)

//go:noescape
func gemmQ6KVNNIAdd(w *byte, wstride, nsb int, acts *int8, sa *float32, asum *float32, kstride, sstride int, out *float32, ostride, ntok int)

//go:noescape
func maxMinAVX2(x *float32, n int) (mx, mn float32)

//go:noescape
func quantQ8KAVX2(x *float32, n int, iscale float32, qs *int8)

//go:noescape
func dotF32AVX2(a, b *float32, n int) float32

//go:noescape
func dotF16AVX2(w *byte, x *float32, n int) float32

//go:noescape
func axpyAVX2(y *float32, a float32, x *float32, n int)

//go:noescape
func triadAVX2(a, b, c *float32, s float32, n int)

//go:noescape
func siluMulAVX2(dst, gate, up *float32, n int)
