// Package llama is the transformer math of the LLaMA family (Llama 2/3, Mistral,
// Mixtral, Qwen2, TinyLlama) for any contiguous range of layers: the unit of work a
// volunteer serves.
//
// A Stage holds the weights of layers [First, Last) on a kernels.Backend; the first
// stage also holds the token embedding, the last the final norm and the output head.
// A Session is one sequence being generated through a stage: it owns the KV cache of
// those layers and the scratch buffers, so decoding a token allocates nothing.
// Running [0, L) in one stage is bit-for-bit the same as running [0, a) and handing
// the activations to [a, L), which is what lets the pipeline split a model across
// nodes without changing its output.
//
// The package computes; it does no I/O and knows nothing of peers or sessions on the
// wire. Sampling (greedy, temperature, top-k, top-p, repetition penalty, seeded) lives
// here too because every client and the single-process generator share it.
package llama
