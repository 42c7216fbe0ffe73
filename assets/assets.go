// Package assets embeds the default model, so `imece generate` and `imece testnet`
// work with no flags and no download on a fresh machine.
//
// stories260K.gguf is Andrej Karpathy's tinyllamas stories260K (MIT; see
// LICENSE.stories260K): a real trained LLaMA-architecture model small enough (1.2 MB)
// to ship in the binary, and the reference every correctness test compares against.
package assets

import _ "embed"

// DefaultModel is the GGUF file of stories260K.
//
//go:embed stories260K.gguf
var DefaultModel []byte

// DefaultModelName is what the command line shows for the embedded model.
const DefaultModelName = "stories260K (embedded)"

// DefaultModelLicense is the notice that must accompany the model wherever it is
// shipped.
//
//go:embed LICENSE.stories260K
var DefaultModelLicense string
