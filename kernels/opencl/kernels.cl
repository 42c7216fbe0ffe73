// imece's OpenCL kernels: the device side of kernels/opencl. OpenCL C 1.2, no
// extensions, so that any conformant device (PoCL on a CPU included) runs
// them.

// matmul_f32: dst[i*rows + r] = sum_c x[i*cols + c] * w[r*cols + c], one work
// item per output, (rows, n) of them.
__kernel void matmul_f32(__global float *dst, __global const float *x, __global const float *w,
                         const int rows, const int cols) {
    const int r = get_global_id(0), i = get_global_id(1);
    __global const float *wr = w + (size_t)r * cols;
    __global const float *xi = x + (size_t)i * cols;
    float acc = 0.0f;
    for (int c = 0; c < cols; c++) acc = fma(xi[c], wr[c], acc);
    dst[(size_t)i * rows + r] = acc;
}

// rmsnorm: one work item per row of width w; dst may alias x.
__kernel void rmsnorm(__global float *dst, __global const float *x, __global const float *gain,
                      const int w, const float eps) {
    const int i = get_global_id(0);
    __global const float *xi = x + (size_t)i * w;
    float ss = 0.0f;
    for (int c = 0; c < w; c++) ss = fma(xi[c], xi[c], ss);
    const float k = rsqrt(ss / w + eps);
    for (int c = 0; c < w; c++) dst[(size_t)i * w + c] = xi[c] * k * gain[c];
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
