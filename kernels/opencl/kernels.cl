// imece's OpenCL kernels: the device side of kernels/opencl. OpenCL C 1.2 with
// no extensions (no cl_khr_fp16, no fp64), so that any conformant device, PoCL
// on a CPU included, runs them. The host compiles this with -D WG=<n>: the
// work-group size of the reductions, a power of two.
//
// Weights stay in their stored block layout (kernels/dtype.go, ggml-common.h)
// and are dequantized here, in registers, as the products read them. Half
// values are read with vload_half, which OpenCL 1.2 has without fp16 support.

#define TILE 16 // gemm: a TILE×TILE tile of outputs per work-group
#define TK 32   // gemm: columns per step (one quantized block)

// Element c of row w (rowBytes bytes) of each weight type.
inline float w_f32(__global const uchar *w, int c) { return ((__global const float *)w)[c]; }
inline float w_f16(__global const uchar *w, int c) { return vload_half(c, (__global const half *)w); }
inline float w_bf16(__global const uchar *w, int c) {
    return as_float((uint)((__global const ushort *)w)[c] << 16);
}
// Q8_0: blocks of 34 bytes, f16 scale then 32 int8.
inline float w_q8_0(__global const uchar *w, int c) {
    __global const uchar *b = w + (c >> 5) * 34;
    return vload_half(0, (__global const half *)b) * (float)((__global const char *)b)[2 + (c & 31)];
}
// Q4_0: blocks of 18 bytes, f16 scale then 16 bytes: low nibbles are elements
// 0-15, high nibbles 16-31, each minus 8.
inline float w_q4_0(__global const uchar *w, int c) {
    __global const uchar *b = w + (c >> 5) * 18;
    const int j = c & 31;
    const uchar q = b[2 + (j & 15)];
    return vload_half(0, (__global const half *)b) * (float)((j < 16 ? (q & 15) : (q >> 4)) - 8);
}
// Q4_K: super-blocks of 144 bytes: f16 d, f16 dmin, 12 bytes of 6-bit scales
// and mins for 8 sub-blocks of 32, then 128 bytes of nibbles (each 32 bytes
// hold two sub-blocks: low nibbles then high).
inline float w_q4_k(__global const uchar *w, int c) {
    __global const uchar *b = w + (c >> 8) * 144;
    __global const uchar *s = b + 4;
    const int e = c & 255, chunk = e >> 6, hi = (e >> 5) & 1, l = e & 31, j = 2 * chunk + hi;
    int sc, m;
    if (j < 4) {
        sc = s[j] & 63;
        m = s[j + 4] & 63;
    } else {
        sc = (s[j + 4] & 15) | ((s[j - 4] >> 6) << 4);
        m = (s[j + 4] >> 4) | ((s[j] >> 6) << 4);
    }
    const uchar q = b[16 + chunk * 32 + l];
    const float d = vload_half(0, (__global const half *)b), dmin = vload_half(1, (__global const half *)b);
    return d * (float)sc * (float)(hi ? q >> 4 : q & 15) - dmin * (float)m;
}
// Q6_K: super-blocks of 210 bytes: 128 bytes of low nibbles, 64 of high
// 2-bit pairs, 16 int8 scales, f16 d; two halves of 128 elements.
inline float w_q6_k(__global const uchar *w, int c) {
    __global const uchar *b = w + (c >> 8) * 210;
    const int e = c & 255, h = e >> 7, quarter = (e >> 5) & 3, l = e & 31;
    __global const uchar *ql = b + h * 64, *qh = b + 128 + h * 32;
    __global const char *sc = (__global const char *)(b + 192) + h * 8;
    const uchar lo = ql[l + (quarter & 1) * 32];
    const int q = ((quarter < 2 ? lo & 15 : lo >> 4) | (((qh[l] >> (2 * quarter)) & 3) << 4)) - 32;
    return vload_half(0, (__global const half *)(b + 208)) * (float)sc[l / 16 + 2 * quarter] * (float)q;
}

// wg_sum and wg_max reduce v over the work-group through buf (WG floats).
inline float wg_sum(__local float *buf, float v) {
    const int lid = get_local_id(0);
    buf[lid] = v;
    barrier(CLK_LOCAL_MEM_FENCE);
    for (int s = WG / 2; s > 0; s >>= 1) {
        if (lid < s) buf[lid] += buf[lid + s];
        barrier(CLK_LOCAL_MEM_FENCE);
    }
    const float r = buf[0];
    barrier(CLK_LOCAL_MEM_FENCE);
    return r;
}
inline float wg_max(__local float *buf, float v) {
    const int lid = get_local_id(0);
    buf[lid] = v;
    barrier(CLK_LOCAL_MEM_FENCE);
    for (int s = WG / 2; s > 0; s >>= 1) {
        if (lid < s) buf[lid] = fmax(buf[lid], buf[lid + s]);
        barrier(CLK_LOCAL_MEM_FENCE);
    }
    const float r = buf[0];
    barrier(CLK_LOCAL_MEM_FENCE);
    return r;
}

// matvec_*: dst[i*rows + r] = sum_c x[i*cols + c] * W[r, c]. One work-group of
// WG items per (row, token): global (rows*WG, n), local (WG, 1). Decode's
// product (n = 1) and small batches; the items stride over the row so reads
// coalesce on a GPU, and a tree sums their parts.
#define MATVEC_ELEMENTS(NAME, WVAL)                                                                   \
    __kernel void NAME(__global float *dst, __global const float *x, __global const uchar *w,         \
                       const int rows, const int cols, const int rowBytes) {                          \
        __local float buf[WG];                                                                        \
        const int r = get_group_id(0), i = get_global_id(1), lid = get_local_id(0);                   \
        __global const uchar *wr = w + (size_t)r * rowBytes;                                          \
        __global const float *xi = x + (size_t)i * cols;                                              \
        float acc = 0.0f;                                                                             \
        for (int c = lid; c < cols; c += WG) acc = fma(WVAL(wr, c), xi[c], acc);                      \
        acc = wg_sum(buf, acc);                                                                       \
        if (lid == 0) dst[(size_t)i * rows + r] = acc;                                                \
    }
MATVEC_ELEMENTS(matvec_f32, w_f32)
MATVEC_ELEMENTS(matvec_f16, w_f16)
MATVEC_ELEMENTS(matvec_bf16, w_bf16)
MATVEC_ELEMENTS(matvec_q4_k, w_q4_k)
MATVEC_ELEMENTS(matvec_q6_k, w_q6_k)

// The 32-element block types go block by block: one scale per block, applied
// once to the block's integer-weighted sum.
__kernel void matvec_q8_0(__global float *dst, __global const float *x, __global const uchar *w,
                          const int rows, const int cols, const int rowBytes) {
    __local float buf[WG];
    const int r = get_group_id(0), i = get_global_id(1), lid = get_local_id(0);
    __global const uchar *wr = w + (size_t)r * rowBytes;
    __global const float *xi = x + (size_t)i * cols;
    float acc = 0.0f;
    for (int blk = lid; blk < cols / 32; blk += WG) {
        __global const uchar *b = wr + blk * 34;
        __global const char *q = (__global const char *)(b + 2);
        __global const float *xb = xi + blk * 32;
        float s = 0.0f;
        for (int j = 0; j < 32; j++) s = fma((float)q[j], xb[j], s);
        acc = fma(vload_half(0, (__global const half *)b), s, acc);
    }
    acc = wg_sum(buf, acc);
    if (lid == 0) dst[(size_t)i * rows + r] = acc;
}

__kernel void matvec_q4_0(__global float *dst, __global const float *x, __global const uchar *w,
                          const int rows, const int cols, const int rowBytes) {
    __local float buf[WG];
    const int r = get_group_id(0), i = get_global_id(1), lid = get_local_id(0);
    __global const uchar *wr = w + (size_t)r * rowBytes;
    __global const float *xi = x + (size_t)i * cols;
    float acc = 0.0f;
    for (int blk = lid; blk < cols / 32; blk += WG) {
        __global const uchar *b = wr + blk * 18;
        __global const float *xb = xi + blk * 32;
        float s = 0.0f;
        for (int j = 0; j < 16; j++) {
            const uchar q = b[2 + j];
            s = fma((float)((int)(q & 15) - 8), xb[j], s);
            s = fma((float)((int)(q >> 4) - 8), xb[j + 16], s);
        }
        acc = fma(vload_half(0, (__global const half *)b), s, acc);
    }
    acc = wg_sum(buf, acc);
    if (lid == 0) dst[(size_t)i * rows + r] = acc;
}

// rowvec_*: the same product with one work item per (row, token) and no
// reduction: global (rows, n). For CPU devices (PoCL), where a work-group is a
// loop on one core and scheduling thousands of them costs more than the
// arithmetic; a GPU wants matvec's many items per row instead.
#define ROWVEC_ELEMENTS(NAME, WVAL)                                                                   \
    __kernel void NAME(__global float *dst, __global const float *x, __global const uchar *w,         \
                       const int rows, const int cols, const int rowBytes) {                          \
        const int r = get_global_id(0), i = get_global_id(1);                                         \
        if (r >= rows) return;                                                                        \
        __global const uchar *wr = w + (size_t)r * rowBytes;                                          \
        __global const float *xi = x + (size_t)i * cols;                                              \
        float acc = 0.0f;                                                                             \
        for (int c = 0; c < cols; c++) acc = fma(WVAL(wr, c), xi[c], acc);                            \
        dst[(size_t)i * rows + r] = acc;                                                              \
    }
ROWVEC_ELEMENTS(rowvec_f32, w_f32)
ROWVEC_ELEMENTS(rowvec_f16, w_f16)
ROWVEC_ELEMENTS(rowvec_bf16, w_bf16)
ROWVEC_ELEMENTS(rowvec_q4_k, w_q4_k)
ROWVEC_ELEMENTS(rowvec_q6_k, w_q6_k)

__kernel void rowvec_q8_0(__global float *dst, __global const float *x, __global const uchar *w,
                          const int rows, const int cols, const int rowBytes) {
    const int r = get_global_id(0), i = get_global_id(1);
    if (r >= rows) return;
    __global const uchar *wr = w + (size_t)r * rowBytes;
    __global const float *xi = x + (size_t)i * cols;
    float acc = 0.0f;
    for (int blk = 0; blk < cols / 32; blk++) {
        __global const uchar *b = wr + blk * 34;
        __global const char *q = (__global const char *)(b + 2);
        __global const float *xb = xi + blk * 32;
        float s = 0.0f;
        for (int j = 0; j < 32; j++) s = fma((float)q[j], xb[j], s);
        acc = fma(vload_half(0, (__global const half *)b), s, acc);
    }
    dst[(size_t)i * rows + r] = acc;
}

__kernel void rowvec_q4_0(__global float *dst, __global const float *x, __global const uchar *w,
                          const int rows, const int cols, const int rowBytes) {
    const int r = get_global_id(0), i = get_global_id(1);
    if (r >= rows) return;
    __global const uchar *wr = w + (size_t)r * rowBytes;
    __global const float *xi = x + (size_t)i * cols;
    float acc = 0.0f;
    for (int blk = 0; blk < cols / 32; blk++) {
        __global const uchar *b = wr + blk * 18;
        __global const float *xb = xi + blk * 32;
        float s = 0.0f;
        for (int j = 0; j < 16; j++) {
            const uchar q = b[2 + j];
            s = fma((float)((int)(q & 15) - 8), xb[j], s);
            s = fma((float)((int)(q >> 4) - 8), xb[j + 16], s);
        }
        acc = fma(vload_half(0, (__global const half *)b), s, acc);
    }
    dst[(size_t)i * rows + r] = acc;
}

// gemm_*: the same product for prefill, TILE rows × TILE tokens per
// work-group of TILE×TILE items: global (roundup(rows), roundup(n)), local
// (TILE, TILE). Each step dequantizes a TILE×TK slab of weights into local
// memory once for all TILE tokens, instead of once per token as matvec would.
#define GEMM(NAME, WVAL)                                                                              \
    __kernel void NAME(__global float *dst, __global const float *x, __global const uchar *w,         \
                       const int rows, const int cols, const int rowBytes, const int n) {             \
        __local float ws[TILE][TK + 1], xs[TILE][TK + 1];                                             \
        const int lr = get_local_id(0), ln = get_local_id(1);                                         \
        const int r0 = get_group_id(0) * TILE, n0 = get_group_id(1) * TILE;                           \
        const int lid = ln * TILE + lr;                                                               \
        float acc = 0.0f;                                                                             \
        for (int c0 = 0; c0 < cols; c0 += TK) {                                                       \
            for (int e = lid; e < TILE * TK; e += TILE * TILE) {                                      \
                const int t = e / TK, k = e % TK, c = c0 + k;                                         \
                ws[t][k] = (r0 + t < rows && c < cols) ? WVAL(w + (size_t)(r0 + t) * rowBytes, c) : 0.0f; \
                xs[t][k] = (n0 + t < n && c < cols) ? x[(size_t)(n0 + t) * cols + c] : 0.0f;        \
            }                                                                                         \
            barrier(CLK_LOCAL_MEM_FENCE);                                                             \
            for (int k = 0; k < TK; k++) acc = fma(ws[lr][k], xs[ln][k], acc);                        \
            barrier(CLK_LOCAL_MEM_FENCE);                                                             \
        }                                                                                             \
        if (r0 + lr < rows && n0 + ln < n) dst[(size_t)(n0 + ln) * rows + r0 + lr] = acc;            \
    }
GEMM(gemm_f32, w_f32)
GEMM(gemm_f16, w_f16)
GEMM(gemm_bf16, w_bf16)
GEMM(gemm_q8_0, w_q8_0)
GEMM(gemm_q4_0, w_q4_0)
GEMM(gemm_q4_k, w_q4_k)
GEMM(gemm_q6_k, w_q6_k)

// rows_*: the embedding lookup, dst[i*cols + c] = W[ids[i], c]; global (cols, n).
#define ROWS(NAME, WVAL)                                                                              \
    __kernel void NAME(__global float *dst, __global const uchar *w, __global const int *ids,         \
                       const int cols, const int rowBytes) {                                          \
        const int c = get_global_id(0), i = get_global_id(1);                                         \
        dst[(size_t)i * cols + c] = WVAL(w + (size_t)ids[i] * rowBytes, c);                           \
    }
ROWS(rows_f32, w_f32)
ROWS(rows_f16, w_f16)
ROWS(rows_bf16, w_bf16)
ROWS(rows_q8_0, w_q8_0)
ROWS(rows_q4_0, w_q4_0)
ROWS(rows_q4_k, w_q4_k)
ROWS(rows_q6_k, w_q6_k)

// rmsnorm: one work-group per row of width w; global (rows*WG), local (WG).
__kernel void rmsnorm(__global float *dst, __global const float *x, __global const float *gain,
                      const int w, const float eps) {
    __local float buf[WG];
    const int r = get_group_id(0), lid = get_local_id(0);
    __global const float *xr = x + (size_t)r * w;
    float ss = 0.0f;
    for (int c = lid; c < w; c += WG) ss = fma(xr[c], xr[c], ss);
    const float k = 1.0f / sqrt(wg_sum(buf, ss) / (float)w + eps);
    for (int c = lid; c < w; c += WG) dst[(size_t)r * w + c] = xr[c] * k * gain[c];
}

// rope: rotates pair j of every head of every row in place; global (half,
// n*heads). Row i is at position pos0 + i. neox pairs (j, j+half), else
// (2j, 2j+1).
__kernel void rope(__global float *x, __global const float *invFreq, const int heads, const int headDim,
                   const int half_, const int pos0, const int neox) {
    const int j = get_global_id(0), row = get_global_id(1);
    const float a = (float)(pos0 + row / heads) * invFreq[j];
    const float cs = cos(a), sn = sin(a);
    __global float *v = x + (size_t)row * headDim;
    const int i0 = neox ? j : 2 * j, i1 = neox ? j + half_ : 2 * j + 1;
    const float x0 = v[i0], x1 = v[i1];
    v[i0] = x0 * cs - x1 * sn;
    v[i1] = x0 * sn + x1 * cs;
}

// attend: causal attention for query i = q0 + g/heads, head h = g%heads, g the
// work-group; global (groups*WG), local (WG). Three passes over the visible
// positions, each split among the items: scores (into this group's row of s,
// sStride floats) and their maximum, exponentials and their sum, then each
// item sums the values of some of the head's dimensions.
__kernel void attend(__global float *dst, __global float *s, __global const float *q,
                     __global const float *K, __global const float *V, const int q0, const int pos0,
                     const int heads, const int kvHeads, const int hd, const float scale, const int sStride) {
    __local float buf[WG];
    const int g = get_group_id(0), lid = get_local_id(0);
    const int i = q0 + g / heads, h = g % heads, kvh = h / (heads / kvHeads);
    const int npos = pos0 + i + 1, stride = kvHeads * hd;
    __global const float *qi = q + ((size_t)i * heads + h) * hd;
    __global float *sg = s + (size_t)g * sStride;
    float m = -INFINITY;
    for (int t = lid; t < npos; t += WG) {
        __global const float *k = K + (size_t)t * stride + kvh * hd;
        float d = 0.0f;
        for (int c = 0; c < hd; c++) d = fma(qi[c], k[c], d);
        d *= scale;
        sg[t] = d;
        m = fmax(m, d);
    }
    m = wg_max(buf, m);
    float l = 0.0f;
    for (int t = lid; t < npos; t += WG) {
        const float p = exp(sg[t] - m);
        sg[t] = p;
        l += p;
    }
    const float inv = 1.0f / wg_sum(buf, l); // its barriers make sg visible to the group
    barrier(CLK_GLOBAL_MEM_FENCE);
    __global float *out = dst + ((size_t)i * heads + h) * hd;
    for (int c = lid; c < hd; c += WG) {
        __global const float *v = V + kvh * hd + c;
        float acc = 0.0f;
        for (int t = 0; t < npos; t++) acc = fma(sg[t], v[(size_t)t * stride], acc);
        out[c] = acc * inv;
    }
}

// swiglu: dst = silu(gate) * up, elementwise.
__kernel void swiglu(__global float *dst, __global const float *gate, __global const float *up) {
    const int i = get_global_id(0);
    const float g = gate[i];
    dst[i] = g / (1.0f + exp(-g)) * up[i];
}

// add: dst[i] += x[i % n].
__kernel void add(__global float *dst, __global const float *x, const int n) {
    const int i = get_global_id(0);
    dst[i] += x[i % n];
}
