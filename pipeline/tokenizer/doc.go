// Package tokenizer turns text into token ids and back exactly as llama.cpp does
// (llama-vocab.cpp, unicode.cpp), so that a prompt tokenized here feeds a model the
// same ids llama.cpp would, and generated ids print the same text.
//
// Two algorithms cover the LLaMA family and its neighbours:
//
//   - SPM (tokenizer.ggml.model "llama": Llama 2, TinyLlama, phi-3): SentencePiece-
//     style BPE. Spaces become "▁", a space is prefixed (add_space_prefix, default
//     on), adjacent symbols merge by highest token score through a priority queue,
//     and characters with no token fall back to <0xNN> byte tokens.
//   - BPE (tokenizer.ggml.model "gpt2"): byte-level BPE. Text is pre-tokenized by
//     the regexes of its family (tokenizer.ggml.pre: gpt-2, llama3, qwen2, falcon,
//     starcoder, refact, mpt, deepseek-coder, deepseek-llm, …), each piece is
//     written in GPT-2's byte alphabet and merged by merge rank.
//
// The pre-tokenizers follow llama.cpp's implementation, not the regex text alone:
// the GPT-2 and Llama 3 expressions run through hand-written scanners with
// llama.cpp's edge cases, and every other expression runs, like llama.cpp's
// std::regex fallback, over text whose non-ASCII code points are collapsed to one
// placeholder per Unicode category (regexp2 supplies the lookahead Go's regexp
// lacks). Unicode properties are Unicode 15.1, as llama.cpp's tables.
//
// Special tokens are split out of the text before tokenization, longest first:
// user-defined tokens always, control tokens only when asked (EncodeOptions.
// ParseSpecial, for chat templates). BOS/EOS are added per add_bos_token /
// add_eos_token with llama.cpp's per-type defaults.
//
// Decoding is the inverse: Decode for whole sequences, Decoder for streaming,
// which holds back the bytes of a UTF-8 character split across tokens.
//
// Vocabularies come from GGUF metadata (FromGGUF, through the small Metadata
// interface, so this package imports no model code) or from a HuggingFace
// tokenizer.json (FromHFJSON; BPE models only).
//
// Deliberate limits: no WordPiece, Unigram (T5), RWKV or PLaMo-2 vocabularies; no
// chat templates (the caller renders them and encodes with ParseSpecial); input
// llama.cpp itself aborts on (a 4-byte sequence above U+10FFFF) is read as U+FFFD
// instead. Where llama.cpp's choice depends on hash-map order (which of several
// end-of-turn tokens becomes EOT), the lowest id wins.
package tokenizer
