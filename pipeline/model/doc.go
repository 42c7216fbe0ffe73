// Package model reads transformer checkpoints: GGUF files and HuggingFace directories
// (config.json with safetensors), memory-mapped, validated and presented in one
// form — a Config, a Metadata map and tensors named as GGUF names them. It also
// writes GGUF files (WriteGGUF, streaming one tensor at a time), synthesises models
// of random weights of any LLaMA shape (Synthesize), and names models on the network
// by the CID of a canonical manifest (Manifest, CID, LayerCID).
//
// Every byte of a model file is untrusted: a file may arrive from a peer. The
// decoders bound every length by what is left of the file before allocating, check
// every offset, and return errors wrapping ErrFormat that name the problem; they
// never panic. Each has a fuzz test whose corpus lives in testdata/fuzz.
//
// Decisions worth knowing:
//
//   - HuggingFace checkpoints are not permuted into llama.cpp's rotary layout: they
//     load with Config.RopeNeox set, which computes the same thing. Their metadata is
//     synthesised as llama.cpp's converter would write it (general.architecture and
//     the <arch>.* keys), so downstream code reads one form. Their tensors are in
//     file order: shards by name, then by offset within a shard.
//   - A model's identity covers its hyperparameters, its tokenizer (the tokenizer.*
//     metadata and any tokenizer.json/tokenizer_config.json) and every tensor byte,
//     but not cosmetic metadata such as general.name: renaming a file does not fork
//     the network, while a light client can verify the tokenizer a peer sends it.
//   - A layer's manifest names the model's CID, so LayerCID(i) answers exactly "who
//     serves layer i of this model". A changed weight byte therefore changes every
//     layer CID (through the model CID), while the tensor entries of the other
//     layers stay as they were.
//   - Synthesised weights are reproducible from the seed alone: each fixed-size
//     chunk of each tensor has its own random stream, so the bytes do not depend on
//     how many CPUs generated them.
//
// The package does no arithmetic on weights beyond quantizing synthetic ones (that is
// kernels) and knows nothing of layers' meaning beyond their names and shapes (that
// is pipeline/llama).
package model
