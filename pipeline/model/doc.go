// Package model reads transformer checkpoints: GGUF files and HuggingFace directories
// (config.json with safetensors), memory-mapped, validated and presented in one
// form — a Config, a Metadata map and tensors named as GGUF names them.
//
// Every byte of a model file is untrusted: a file may arrive from a peer. The
// decoders bound every length by what is left of the file before allocating, check
// every offset, and return errors wrapping ErrFormat that name the problem; they
// never panic.
//
// The package does no arithmetic on weights (that is kernels) and knows nothing of
// layers' meaning beyond their names and shapes (that is pipeline/llama).
package model
