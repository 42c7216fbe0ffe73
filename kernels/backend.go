package kernels

// Backend runs the arithmetic of a transformer layer: matrix products against weight
// matrices in their stored (often quantized) form, and the few vector operations
// between them. The layer engine in pipeline/llama is written against this interface
// only, so a GPU backend slots in without touching the model code.
//
// Activations are row-major float32 slices in host memory: n rows ("tokens") of a
// fixed width. Every method is safe for concurrent use by several sessions; a
// backend parallelises each call internally.
//
// Methods do not validate lengths beyond what they need to stay memory safe: the
// engine sizes every buffer once per session, and a mismatch is a programming error
// that panics, never a consequence of input from the network or disk.
type Backend interface {
	// Name identifies the backend and its instruction set in logs and benchmarks,
	// e.g. "cpu/avx512" or "cpu/generic".
	Name() string

	// NewMatrix makes a rows×cols weight matrix, stored row-major in dt, available to
	// the backend. The CPU backend keeps a reference to data (usually memory-mapped
	// from the model file) and must not be handed a slice that will change; device
	// backends copy it. cols must be a multiple of dt.BlockSize().
	NewMatrix(dt DType, rows, cols int, data []byte) (Matrix, error)

	// MatMul computes dst[i·rows + r] = Σ_c x[i·cols + c] · W[r, c] for each of the n
	// rows of x: n = 1 is the decode matrix-vector product, n > 1 the prefill
	// matrix-matrix product. Quantized backends may quantize x the way llama.cpp does
	// (Q8_0/Q8_K activations) for the integer dot products.
	MatMul(dst, x []float32, n int, w Matrix)

	// Rows copies the dequantized rows ids[i] of w into dst[i·cols:(i+1)·cols]: the
	// embedding lookup.
	Rows(dst []float32, w Matrix, ids []int32)

	// RMSNorm normalises each row of x (width len(gain)) to unit root mean square and
	// multiplies by gain: dst = x / sqrt(mean(x²) + eps) · gain. dst may alias x.
	RMSNorm(dst, x, gain []float32, eps float32)

	// RoPE rotates, in place, the first 2·len(r.InvFreq) dimensions of every head of
	// n rows of x, row i being at position r.Pos0 + i. x holds n × heads × headDim.
	RoPE(x []float32, n, heads, headDim int, r RoPE)

	// Attend computes causal scaled-dot-product attention of the queries q
	// (a.N × a.Heads × a.HeadDim) against the cache a.K, a.V
	// (positions × a.KVHeads × a.HeadDim), query i seeing positions [0, a.Pos0+i].
	// The result, in q's layout, goes to dst.
	Attend(dst, q []float32, a Attention)

	// SwiGLU computes dst[i] = silu(gate[i]) · up[i]. dst may alias gate or up.
	SwiGLU(dst, gate, up []float32)

	// Add computes dst[i] += x[i % len(x)]: a residual connection when the lengths
	// match, a bias broadcast over rows when x is one row.
	Add(dst, x []float32)

	// Close releases the backend's workers and device memory.
	Close() error
}

// Matrix is a weight matrix resident on a backend, created by Backend.NewMatrix.
type Matrix interface {
	Rows() int
	Cols() int
	DType() DType
}

// RoPE describes a rotary position embedding. The layer engine computes InvFreq once
// per model from the base frequency and whatever scaling the model uses (linear,
// Llama 3 frequency factors), so backends see a single representation.
type RoPE struct {
	// Pos0 is the position of the first row.
	Pos0 int
	// InvFreq[j] is the angular frequency of dimension pair j: the pair is rotated
	// by (Pos0+i)·InvFreq[j] radians.
	InvFreq []float32
	// Neox selects the pairing: false pairs dimensions (2j, 2j+1), as GGUF llama
	// weights expect; true pairs (j, j+rot/2), as HuggingFace weights and Qwen2 do.
	Neox bool
}

// Attention describes one causal attention call over a KV cache.
type Attention struct {
	N       int // number of queries
	Pos0    int // position of the first query; the cache holds Pos0+N positions
	Heads   int // query heads
	KVHeads int // key/value heads; Heads is a multiple of it (grouped-query attention)
	HeadDim int
	Scale   float32   // usually 1/sqrt(HeadDim)
	K, V    []float32 // cache, position-major: [pos][KVHeads][HeadDim]
}
