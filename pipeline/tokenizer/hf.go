package tokenizer

import (
	"encoding/json"
	"fmt"
	"math"
	"strings"
)

// hfTokenizer is the part of a HuggingFace tokenizer.json FromHFJSON reads.
type hfTokenizer struct {
	AddedTokens []struct {
		ID      int64  `json:"id"`
		Content string `json:"content"`
		Special bool   `json:"special"`
		LStrip  bool   `json:"lstrip"`
		RStrip  bool   `json:"rstrip"`
	} `json:"added_tokens"`
	Normalizer    *hfNode `json:"normalizer"`
	PreTokenizer  *hfNode `json:"pre_tokenizer"`
	PostProcessor *hfNode `json:"post_processor"`
	Model         struct {
		Type         string            `json:"type"`
		Vocab        map[string]int64  `json:"vocab"`
		Merges       []json.RawMessage `json:"merges"`
		ByteFallback bool              `json:"byte_fallback"`
		UnkToken     *string           `json:"unk_token"`
		IgnoreMerges bool              `json:"ignore_merges"`
	} `json:"model"`
}

// hfNode is any normalizer, pre-tokenizer or post-processor; only the fields the
// supported kinds use are read.
type hfNode struct {
	Type          string    `json:"type"`
	Normalizers   []*hfNode `json:"normalizers"`
	PreTokenizers []*hfNode `json:"pretokenizers"`
	Processors    []*hfNode `json:"processors"`
	Prepend       string    `json:"prepend"`
	Content       string    `json:"content"`
	Pattern       *struct {
		String *string `json:"String"`
		Regex  *string `json:"Regex"`
	} `json:"pattern"`
	Behavior        string `json:"behavior"`
	Invert          bool   `json:"invert"`
	UseRegex        *bool  `json:"use_regex"`
	AddPrefixSpace  bool   `json:"add_prefix_space"`
	IndividualDigit bool   `json:"individual_digits"`
	PrependScheme   string `json:"prepend_scheme"`
	Replacement     string `json:"replacement"`
	Single          []struct {
		SpecialToken *struct {
			ID string `json:"id"`
		} `json:"SpecialToken"`
		Sequence *struct {
			ID string `json:"id"`
		} `json:"Sequence"`
	} `json:"single"`
}

// maxHFVocab bounds the id space a tokenizer.json may claim, so a forged id
// cannot make us allocate gigabytes.
const maxHFVocab = 1 << 22

// FromHFJSON builds a tokenizer from a HuggingFace tokenizer.json with a BPE
// model, the way llama.cpp's converter would turn it into GGUF: a byte_fallback
// (or "▁"-normalizing) model becomes SPM, whose merge priority is the rank of the
// first merge producing each token; any other becomes byte-level BPE pre-tokenized
// by the file's Split/ByteLevel/Digits rules. added_tokens become control tokens
// (special) or user-defined ones. BOS/EOS are read from a TemplateProcessing
// post-processor; otherwise EOS is the first of the usual end-of-text tokens.
func FromHFJSON(tokenizerJSON []byte) (*Tokenizer, error) {
	var h hfTokenizer
	if err := json.Unmarshal(tokenizerJSON, &h); err != nil {
		return nil, fmt.Errorf("%w: tokenizer.json: %v", ErrInvalid, err)
	}
	if h.Model.Type != "BPE" && !(h.Model.Type == "" && h.Model.Merges != nil) {
		return nil, fmt.Errorf("%w: tokenizer.json model type %q is not supported (BPE only)", ErrInvalid, h.Model.Type)
	}
	// Dense id space: vocab plus added tokens; holes become unused placeholders.
	n := int64(0)
	for _, id := range h.Model.Vocab {
		if id < 0 || id >= maxHFVocab {
			return nil, fmt.Errorf("%w: token id %d out of range", ErrInvalid, id)
		}
		n = max(n, id+1)
	}
	for _, a := range h.AddedTokens {
		if a.ID < 0 || a.ID >= maxHFVocab {
			return nil, fmt.Errorf("%w: added token id %d out of range", ErrInvalid, a.ID)
		}
		n = max(n, a.ID+1)
	}
	if n == 0 {
		return nil, fmt.Errorf("%w: tokenizer.json has an empty vocabulary", ErrInvalid)
	}
	if n > 2*int64(len(h.Model.Vocab)+len(h.AddedTokens))+1024 {
		return nil, fmt.Errorf("%w: token ids up to %d for %d tokens", ErrInvalid, n-1, len(h.Model.Vocab)+len(h.AddedTokens))
	}
	s := &spec{
		tokens: make([]string, n),
		types:  make([]int32, n),
		ids:    map[string]uint64{},
	}
	filled := make([]bool, n)
	for text, id := range h.Model.Vocab {
		if filled[id] {
			return nil, fmt.Errorf("%w: tokens %q and %q share id %d", ErrInvalid, s.tokens[id], text, id)
		}
		s.tokens[id] = text
		s.types[id] = int32(TypeNormal)
		filled[id] = true
	}
	for _, a := range h.AddedTokens {
		if filled[a.ID] && s.tokens[a.ID] != a.Content {
			return nil, fmt.Errorf("%w: added token %q reuses id %d of %q", ErrInvalid, a.Content, a.ID, s.tokens[a.ID])
		}
		s.tokens[a.ID] = a.Content
		s.types[a.ID] = int32(TypeUserDefined)
		if a.Special {
			s.types[a.ID] = int32(TypeControl)
		}
		filled[a.ID] = true
	}
	for i := range s.tokens {
		if !filled[i] {
			s.tokens[i] = fmt.Sprintf("[PAD%d]", i)
			s.types[i] = int32(TypeUnused)
		}
	}
	merges := make([][2]string, 0, len(h.Model.Merges))
	for _, raw := range h.Model.Merges {
		var str string
		var pair []string
		switch {
		case json.Unmarshal(raw, &str) == nil:
			a, b, ok := strings.Cut(str, " ")
			if !ok {
				return nil, fmt.Errorf("%w: merge %q has no space", ErrInvalid, str)
			}
			merges = append(merges, [2]string{a, b})
		case json.Unmarshal(raw, &pair) == nil && len(pair) == 2:
			merges = append(merges, [2]string{pair[0], pair[1]})
		default:
			return nil, fmt.Errorf("%w: malformed merge %s", ErrInvalid, raw)
		}
	}

	spmStyle := h.Model.ByteFallback
	prefix := false
	walk(h.Normalizer, func(x *hfNode) {
		switch x.Type {
		case "Prepend":
			prefix = prefix || x.Prepend == "▁"
		case "Replace":
			if x.Pattern != nil && x.Pattern.String != nil && *x.Pattern.String == " " && x.Content == "▁" {
				spmStyle = true
			}
		}
	})
	walk(h.PreTokenizer, func(x *hfNode) {
		if x.Type == "Metaspace" {
			spmStyle = true
			prefix = prefix || x.PrependScheme == "always" || x.PrependScheme == "first" || (x.PrependScheme == "" && x.AddPrefixSpace)
		}
	})

	if spmStyle {
		s.model = "llama"
		s.addSpacePrefix = &prefix
		// SentencePiece merges the highest-scoring token; a token's first merge
		// rank orders the same way. Tokens no merge produces must never form.
		s.scores = make([]float32, n)
		ids := make(map[string]int64, n)
		for i, w := range s.tokens {
			ids[w] = int64(i)
			if len([]rune(w)) > 1 && s.types[i] == int32(TypeNormal) {
				s.scores[i] = float32(math.Inf(-1))
			}
		}
		seen := map[int64]bool{}
		for rank, m := range merges {
			if id, ok := ids[m[0]+m[1]]; ok && !seen[id] {
				seen[id] = true
				s.scores[id] = -float32(rank)
			}
		}
		for i, w := range s.tokens {
			if len(w) == 6 && strings.HasPrefix(w, "<0x") && strings.HasSuffix(w, ">") && s.types[i] == int32(TypeNormal) {
				s.types[i] = int32(TypeByte)
			}
		}
		if u := h.Model.UnkToken; u != nil {
			if id, ok := ids[*u]; ok {
				s.types[id] = int32(TypeUnknown)
				s.ids["unknown_token_id"] = uint64(id)
			}
		}
	} else {
		s.model = "gpt2"
		s.pre = "tokenizer.json"
		s.merges = merges
		regexes, err := hfRegexes(h.PreTokenizer)
		if err != nil {
			return nil, err
		}
		s.regexes = regexes
		im := h.Model.IgnoreMerges
		s.ignoreMerges = &im
	}

	index := map[string]int64{}
	for i, w := range s.tokens {
		index[w] = int64(i)
	}
	var bos, eos string
	walk(h.PostProcessor, func(x *hfNode) {
		if x.Type != "TemplateProcessing" || len(x.Single) == 0 {
			return
		}
		if first := x.Single[0].SpecialToken; first != nil {
			bos = first.ID
		}
		if last := x.Single[len(x.Single)-1].SpecialToken; last != nil && len(x.Single) > 1 {
			eos = last.ID
		}
	})
	addBOS, addEOS := bos != "", eos != ""
	if bos == "" {
		for _, w := range []string{"<s>", "<|begin_of_text|>", "<bos>", "<|startoftext|>"} {
			if _, ok := index[w]; ok {
				bos = w
				break
			}
		}
	}
	if eos == "" {
		for _, w := range []string{"</s>", "<|endoftext|>", "<|end_of_text|>", "<eos>", "<|im_end|>", "<|eot_id|>"} {
			if _, ok := index[w]; ok {
				eos = w
				break
			}
		}
	}
	if id, ok := index[bos]; ok {
		s.ids["bos_token_id"] = uint64(id)
	}
	if id, ok := index[eos]; ok {
		s.ids["eos_token_id"] = uint64(id)
	}
	if _, ok := index[bos]; ok || !spmStyle {
		s.addBOS = &addBOS
	}
	s.addEOS = &addEOS
	t, err := build(s)
	if err != nil {
		return nil, err
	}
	for _, a := range h.AddedTokens {
		if a.LStrip {
			t.attrs[a.ID] |= attrLStrip
		}
		if a.RStrip {
			t.attrs[a.ID] |= attrRStrip
		}
	}
	return t, nil
}

// walk visits a node and, for Sequence nodes, its children in order.
func walk(x *hfNode, f func(*hfNode)) {
	if x == nil {
		return
	}
	f(x)
	for _, c := range x.Normalizers {
		walk(c, f)
	}
	for _, c := range x.PreTokenizers {
		walk(c, f)
	}
	for _, c := range x.Processors {
		walk(c, f)
	}
}

// hfRegexes turns a byte-level pre-tokenizer into llama.cpp-style split regexes.
func hfRegexes(x *hfNode) ([]string, error) {
	regexes := []string{}
	var err error
	walk(x, func(x *hfNode) {
		if err != nil {
			return
		}
		switch x.Type {
		case "Sequence":
		case "ByteLevel":
			if x.AddPrefixSpace {
				err = fmt.Errorf("%w: ByteLevel add_prefix_space is not supported", ErrInvalid)
			}
			if x.UseRegex == nil || *x.UseRegex {
				regexes = append(regexes, regexGPT2)
			}
		case "Split":
			if x.Pattern == nil || x.Invert || (x.Behavior != "Isolated" && x.Behavior != "") {
				err = fmt.Errorf("%w: Split pre-tokenizer must be an Isolated, non-inverted pattern", ErrInvalid)
				return
			}
			switch {
			case x.Pattern.Regex != nil:
				regexes = append(regexes, *x.Pattern.Regex)
			case x.Pattern.String != nil:
				regexes = append(regexes, regexpQuote(*x.Pattern.String))
			}
		case "Digits":
			if x.IndividualDigit {
				regexes = append(regexes, `\p{N}`)
			} else {
				regexes = append(regexes, `\p{N}+`)
			}
		default:
			err = fmt.Errorf("%w: pre-tokenizer %q is not supported", ErrInvalid, x.Type)
		}
	})
	return regexes, err
}

func regexpQuote(s string) string {
	var b strings.Builder
	for _, r := range s {
		if strings.ContainsRune(`\.+*?()|[]{}^$`, r) {
			b.WriteByte('\\')
		}
		b.WriteRune(r)
	}
	return b.String()
}
