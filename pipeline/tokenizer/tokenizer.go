package tokenizer

import (
	"errors"
	"fmt"
	"slices"
	"strings"
)

// ErrInvalid is wrapped by every error about a vocabulary that cannot be used: a
// missing or malformed key, a duplicate token, an unknown pre-tokenizer.
var ErrInvalid = errors.New("invalid tokenizer")

// Kind is the tokenization algorithm a vocabulary uses.
type Kind int

const (
	// SPM is SentencePiece-style BPE: score-driven merges over text whose spaces are
	// written "▁", with <0xNN> byte fallback (tokenizer.ggml.model "llama").
	SPM Kind = iota + 1
	// BPE is byte-level BPE: regex pre-tokenization, GPT-2's byte alphabet and
	// rank-ordered merges (tokenizer.ggml.model "gpt2").
	BPE
)

func (k Kind) String() string {
	switch k {
	case SPM:
		return "spm"
	case BPE:
		return "bpe"
	}
	return fmt.Sprintf("Kind(%d)", int(k))
}

// TokenType is the per-token type stored in GGUF's tokenizer.ggml.token_type.
type TokenType int32

// Token types as numbered by GGUF (and SentencePiece).
const (
	TypeUndefined   TokenType = 0
	TypeNormal      TokenType = 1
	TypeUnknown     TokenType = 2
	TypeControl     TokenType = 3
	TypeUserDefined TokenType = 4
	TypeUnused      TokenType = 5
	TypeByte        TokenType = 6
)

// attr is llama.cpp's llama_token_attr: the type turned into bits, plus the
// whitespace-stripping flags some models set on their special tokens.
type attr uint32

const (
	attrUnknown attr = 1 << iota
	attrUnused
	attrNormal
	attrControl
	attrUserDefined
	attrByte
	attrNormalized
	attrLStrip
	attrRStrip
	attrSingleWord
)

// NoToken marks an absent special token (llama.cpp's LLAMA_TOKEN_NULL).
const NoToken int32 = -1

// Tokenizer turns text into token ids and back, bit-exactly as llama.cpp does for
// the same vocabulary. It is immutable after construction and safe for concurrent
// use.
type Tokenizer struct {
	kind   Kind
	pre    string
	tokens []string
	scores []float32
	attrs  []attr
	ids    map[string]int32
	ranks  map[string]int32 // "left\x00right" → merge rank

	bos, eos, eot, eom, unk, sep, pad, mask int32
	eog                                     []int32 // sorted

	addSpacePrefix bool
	addBOS, addEOS bool
	cleanSpaces    bool
	ignoreMerges   bool

	special  []int32 // control, user-defined and unknown tokens, longest text first
	pretok   *preTokenizer
	byteToks [256]int32 // SPM: id of <0xNN> (or the byte itself), -1 if none
}

// Kind reports the algorithm.
func (t *Tokenizer) Kind() Kind { return t.kind }

// Pre reports the pre-tokenizer family (tokenizer.ggml.pre), "" for SPM.
func (t *Tokenizer) Pre() string { return t.pre }

// VocabSize is the number of tokens; valid ids are 0 … VocabSize()-1.
func (t *Tokenizer) VocabSize() int { return len(t.tokens) }

// TokenText is the vocabulary's raw text of id ("▁the", "Ġthe", "<0x0A>"), or ""
// when id is out of range. Use Piece for the text a token decodes to.
func (t *Tokenizer) TokenText(id int32) string {
	if id < 0 || int(id) >= len(t.tokens) {
		return ""
	}
	return t.tokens[id]
}

// TokenID looks a token up by its raw vocabulary text.
func (t *Tokenizer) TokenID(text string) (int32, bool) {
	id, ok := t.ids[text]
	return id, ok
}

// Score is the SentencePiece score of id (0 for vocabularies without scores).
func (t *Tokenizer) Score(id int32) float32 {
	if id < 0 || int(id) >= len(t.scores) {
		return 0
	}
	return t.scores[id]
}

// IsControl reports whether id is a control token (BOS, EOS, chat markers): such
// tokens decode to nothing unless rendering special tokens is asked for.
func (t *Tokenizer) IsControl(id int32) bool {
	return id >= 0 && int(id) < len(t.attrs) && t.attrs[id]&attrControl != 0
}

// BOS is the beginning-of-sequence token, NoToken if the vocabulary has none.
func (t *Tokenizer) BOS() int32 { return t.bos }

// EOS is the end-of-sequence token, NoToken if the vocabulary has none.
func (t *Tokenizer) EOS() int32 { return t.eos }

// EOT is the end-of-turn token of chat models, NoToken if none.
func (t *Tokenizer) EOT() int32 { return t.eot }

// Unknown is the token SentencePiece vocabularies use for unknown input, NoToken
// if none.
func (t *Tokenizer) Unknown() int32 { return t.unk }

// Pad is the padding token, NoToken if none.
func (t *Tokenizer) Pad() int32 { return t.pad }

// EOG lists every token that ends generation (EOS, EOT, EOM and the
// end-of-turn markers llama.cpp recognises by text), ascending.
func (t *Tokenizer) EOG() []int32 { return slices.Clone(t.eog) }

// IsEOG reports whether sampling id should stop generation.
func (t *Tokenizer) IsEOG(id int32) bool {
	_, ok := slices.BinarySearch(t.eog, id)
	return ok && id != NoToken
}

// AddsBOS reports whether Encode with addSpecial prepends BOS.
func (t *Tokenizer) AddsBOS() bool { return t.addBOS }

// AddsEOS reports whether Encode with addSpecial appends EOS.
func (t *Tokenizer) AddsEOS() bool { return t.addEOS }

// EncodeOptions controls EncodeWith.
type EncodeOptions struct {
	// AddSpecial adds BOS/EOS as the vocabulary asks (tokenizer.ggml.add_bos_token,
	// add_eos_token, with llama.cpp's defaults per model type).
	AddSpecial bool
	// ParseSpecial recognises control tokens written in the text ("<s>",
	// "<|im_end|>"), as chat templates need. User-defined tokens are always
	// recognised, as in llama.cpp and HuggingFace.
	ParseSpecial bool
}

// Encode tokenizes text as llama.cpp's llama_tokenize(text, addSpecial,
// parse_special=false): special-token text in the input stays plain text.
func (t *Tokenizer) Encode(text string, addSpecial bool) []int32 {
	return t.EncodeWith(text, EncodeOptions{AddSpecial: addSpecial})
}

// fragment is a piece of the input after special-token partitioning: either a
// token (id ≥ 0) or raw text text[start:end].
type fragment struct {
	id         int32
	start, end int
}

// EncodeWith tokenizes text with explicit options.
func (t *Tokenizer) EncodeWith(text string, o EncodeOptions) []int32 {
	var frags []fragment
	if text != "" {
		frags = t.partition(text, o.ParseSpecial)
	}
	out := make([]int32, 0, len(text)/3+2)
	if o.AddSpecial && t.addBOS && t.bos != NoToken {
		out = append(out, t.bos)
	}
	switch t.kind {
	case SPM:
		var s spmSession
		prevSpecial := true // the first text gets the space prefix too
		for _, f := range frags {
			if f.id >= 0 {
				out = append(out, f.id)
				prevSpecial = true
				continue
			}
			raw := text[f.start:f.end]
			if t.addSpacePrefix && prevSpecial {
				raw = " " + raw
			}
			out = s.tokenize(t, strings.ReplaceAll(raw, " ", "▁"), out)
			prevSpecial = false
		}
	case BPE:
		var s bpeSession
		for _, f := range frags {
			if f.id >= 0 {
				out = append(out, f.id)
				continue
			}
			out = s.tokenize(t, text[f.start:f.end], out)
		}
	}
	if o.AddSpecial && t.addEOS && t.eos != NoToken {
		out = append(out, t.eos)
	}
	return out
}

// partition splits text around special tokens, longest first, as llama.cpp's
// tokenizer_st_partition: control and unknown tokens only when parseSpecial,
// user-defined tokens always; LSTRIP/RSTRIP tokens eat the whitespace beside them.
func (t *Tokenizer) partition(text string, parseSpecial bool) []fragment {
	frags := []fragment{{id: -1, start: 0, end: len(text)}}
	var next []fragment
	for _, id := range t.special {
		a := t.attrs[id]
		if !parseSpecial && a&(attrControl|attrUnknown) != 0 {
			continue
		}
		tok := t.tokens[id]
		if !strings.Contains(text, tok) {
			continue
		}
		next = next[:0]
		for _, f := range frags {
			if f.id >= 0 {
				next = append(next, f)
				continue
			}
			pos, end := f.start, f.end
			for {
				i := strings.Index(text[pos:end], tok)
				if i < 0 {
					if pos < end {
						next = append(next, fragment{id: -1, start: pos, end: end})
					}
					break
				}
				m := pos + i
				l := m
				if a&attrLStrip != 0 {
					for l > pos && isCSpace(text[l-1]) {
						l--
					}
				}
				if l > pos {
					next = append(next, fragment{id: -1, start: pos, end: l})
				}
				next = append(next, fragment{id: id, start: m, end: m + len(tok)})
				r := m + len(tok)
				if r >= end {
					break
				}
				if a&attrRStrip != 0 {
					for r < end && isCSpace(text[r]) {
						r++
					}
				}
				pos = r
			}
		}
		frags, next = next, frags
	}
	return frags
}
