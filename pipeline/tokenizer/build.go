package tokenizer

import (
	"cmp"
	"fmt"
	"slices"
	"strings"
)

// spec is a vocabulary as read from a GGUF file or a tokenizer.json, before
// llama.cpp's load-time rules are applied to it.
type spec struct {
	model  string // "llama" (SPM) or "gpt2" (BPE)
	pre    string
	tokens []string
	scores []float32 // nil: all 0
	types  []int32   // nil: all normal
	merges [][2]string
	// regexes, when non-nil, replace the family's pre-tokenizer (tokenizer.json).
	regexes []string
	// Optional keys; nil when absent.
	ids            map[string]uint64 // special-token id keys, without the "tokenizer.ggml." prefix
	addSpacePrefix *bool
	addBOS, addEOS *bool
	ignoreMerges   *bool
	name, arch     string
}

// specialKeys are the tokenizer.ggml.* id keys in llama.cpp's order (later
// duplicates, the deprecated FIM names, override earlier ones).
var specialKeys = []string{
	"bos_token_id", "eos_token_id", "eot_token_id", "eom_token_id", "unknown_token_id",
	"seperator_token_id", "padding_token_id", "mask_token_id",
	"fim_pre_token_id", "fim_suf_token_id", "fim_mid_token_id", "fim_pad_token_id",
	"fim_rep_token_id", "fim_sep_token_id",
	"prefix_token_id", "suffix_token_id", "middle_token_id",
}

// Texts llama.cpp recognises special tokens by, when the file does not name them.
var (
	eotTexts    = []string{"<|eot_id|>", "<|im_end|>", "<|end|>", "<end_of_turn>", "<|endoftext|>", "<|end_of_text|>", "<EOT>", "_<EOT>", "[EOT]", "<｜end▁of▁sentence｜>", "<end_of_utterance>"}
	eomTexts    = []string{"<|eom_id|>"}
	fimPreTexts = []string{"<|fim_prefix|>", "<fim-prefix>", "<fim_prefix>", "<｜fim▁begin｜>", "<PRE>", "▁<PRE>", "<|code_prefix|>", "<|prefix|>"}
	fimSufTexts = []string{"<|fim_suffix|>", "<fim-suffix>", "<fim_suffix>", "<｜fim▁hole｜>", "<SUF>", "▁<SUF>", "<|code_suffix|>", "<|suffix|>"}
	fimMidTexts = []string{"<|fim_middle|>", "<fim-middle>", "<fim_middle>", "<｜fim▁end｜>", "<MID>", "▁<MID>", "<|code_middle|>", "<|middle|>"}
	fimPadTexts = []string{"<|fim_pad|>", "<fim-pad>", "<fim_pad>", "<PAD>", "[PAD]"}
	fimRepTexts = []string{"<|fim_repo|>", "<|repo_name|>", "<fim-repo>", "<REPO>", "<reponame>"}
	fimSepTexts = []string{"<|file_sep|>"}
	eogTexts    = []string{"<|eot_id|>", "<|im_end|>", "<|end|>", "<|return|>", "<|call|>", "<|flush|>", "<|calls|>", "<end_of_turn>", "<|endoftext|>", "</s>", "<|eom_id|>", "<EOT>", "_<EOT>", "[EOT]", "[EOS]", "<|end_of_text|>", "<end_of_utterance>", "<eos>", "<turn|>", "<|tool_response>", "<｜end▁of▁sentence｜>", "[e~["}
)

// build applies llama.cpp's llama_vocab::load rules to a spec.
func build(s *spec) (*Tokenizer, error) {
	t := &Tokenizer{eot: NoToken, eom: NoToken, sep: NoToken, pad: NoToken, mask: NoToken}
	fimPre, fimSuf, fimMid, fimPad, fimRep, fimSep := NoToken, NoToken, NoToken, NoToken, NoToken, NoToken
	var fam family
	switch s.model {
	case "llama":
		t.kind = SPM
		t.bos, t.eos, t.unk = 1, 2, 0
		t.addSpacePrefix, t.addBOS = true, true
	case "gpt2":
		t.kind = BPE
		t.bos, t.eos, t.unk = 11, 11, NoToken
		pre := s.pre
		if pre == "" {
			pre = "default"
		}
		if s.regexes == nil {
			f, ok := families[pre]
			if !ok {
				return nil, fmt.Errorf("%w: unknown pre-tokenizer type %q", ErrInvalid, s.pre)
			}
			fam = f
		} else {
			fam = family{regexes: s.regexes}
		}
		t.pre = pre
		t.cleanSpaces = !fam.keepSpaces
		t.ignoreMerges = fam.ignoreMerges
		t.addBOS = fam.addBOS
	default:
		return nil, fmt.Errorf("%w: unsupported tokenizer model %q", ErrInvalid, s.model)
	}
	if s.addSpacePrefix != nil {
		t.addSpacePrefix = *s.addSpacePrefix
	}
	if s.ignoreMerges != nil {
		t.ignoreMerges = *s.ignoreMerges
	}

	n := len(s.tokens)
	if n == 0 {
		return nil, fmt.Errorf("%w: empty vocabulary", ErrInvalid)
	}
	if s.scores != nil && len(s.scores) < n {
		return nil, fmt.Errorf("%w: %d scores for %d tokens", ErrInvalid, len(s.scores), n)
	}
	if s.types != nil && len(s.types) < n {
		return nil, fmt.Errorf("%w: %d token types for %d tokens", ErrInvalid, len(s.types), n)
	}
	t.tokens = make([]string, n)
	t.scores = make([]float32, n)
	t.attrs = make([]attr, n)
	t.ids = make(map[string]int32, n)
	for i, w := range s.tokens {
		if w == "" {
			w = fmt.Sprintf("[EMPTY_%d]", i)
		}
		if prev, dup := t.ids[w]; dup {
			return nil, fmt.Errorf("%w: duplicate token %q has ids %d and %d", ErrInvalid, w, prev, i)
		}
		t.ids[w] = int32(i)
		t.tokens[i] = w
		if s.scores != nil {
			t.scores[i] = s.scores[i]
		}
		t.attrs[i] = attrNormal
		if s.types != nil {
			switch TokenType(s.types[i]) {
			case TypeUnknown:
				t.attrs[i] = attrUnknown
			case TypeUnused:
				t.attrs[i] = attrUnused
			case TypeNormal:
				t.attrs[i] = attrNormal
			case TypeControl:
				t.attrs[i] = attrControl
			case TypeUserDefined:
				t.attrs[i] = attrUserDefined
			case TypeByte:
				t.attrs[i] = attrByte
			default:
				t.attrs[i] = 0
			}
		}
	}
	if t.kind == BPE {
		t.ranks = make(map[string]int32, len(s.merges))
		for i, m := range s.merges {
			k := mergeKey(m[0], m[1])
			if _, ok := t.ranks[k]; !ok { // first rank wins, as std::unordered_map::emplace
				t.ranks[k] = int32(i)
			}
		}
	}

	// Special token ids: defaults out of range are dropped; file values out of range
	// are ignored.
	targets := map[string]*int32{
		"bos_token_id": &t.bos, "eos_token_id": &t.eos, "eot_token_id": &t.eot, "eom_token_id": &t.eom,
		"unknown_token_id": &t.unk, "seperator_token_id": &t.sep, "padding_token_id": &t.pad, "mask_token_id": &t.mask,
		"fim_pre_token_id": &fimPre, "fim_suf_token_id": &fimSuf, "fim_mid_token_id": &fimMid,
		"fim_pad_token_id": &fimPad, "fim_rep_token_id": &fimRep, "fim_sep_token_id": &fimSep,
		"prefix_token_id": &fimPre, "suffix_token_id": &fimSuf, "middle_token_id": &fimMid,
	}
	for _, k := range specialKeys {
		p := targets[k]
		if *p >= 0 && int(*p) >= n {
			*p = NoToken
		}
		if v, ok := s.ids[k]; ok && v < uint64(n) {
			*p = int32(v)
		}
	}
	if s.addBOS != nil {
		t.addBOS = *s.addBOS
	}
	if s.addEOS != nil {
		t.addEOS = *s.addEOS
	}
	if t.addBOS && t.bos == NoToken {
		return nil, fmt.Errorf("%w: add_bos_token is true, but bos_token_id is not set", ErrInvalid)
	}
	if t.addEOS && t.eos == NoToken {
		return nil, fmt.Errorf("%w: add_eos_token is true, but eos_token_id is not set", ErrInvalid)
	}

	// Recognise special tokens by text, marking them control. llama.cpp walks a hash
	// map here, so which of several candidates becomes EOT is unspecified there; we
	// take the lowest id.
	byID := func(texts []string, id *int32) {
		if *id != NoToken {
			return
		}
		best := NoToken
		for _, s := range texts {
			if tid, ok := t.ids[s]; ok && (best == NoToken || tid < best) {
				best = tid
			}
		}
		if best != NoToken {
			*id = best
			t.attrs[best] |= attrControl
		}
	}
	byID(eotTexts, &t.eot)
	byID(eomTexts, &t.eom)
	byID(fimPreTexts, &fimPre)
	byID(fimSufTexts, &fimSuf)
	byID(fimMidTexts, &fimMid)
	byID(fimPadTexts, &fimPad)
	byID(fimRepTexts, &fimRep)
	byID(fimSepTexts, &fimSep)
	for id, w := range t.tokens {
		if t.attrs[id]&attrControl != 0 && strings.Contains(w, "unused") {
			t.attrs[id] |= attrUnused
		}
	}

	eog := map[int32]bool{}
	for _, id := range []int32{fimPad, fimRep, fimSep} {
		if id != NoToken {
			eog[id] = true
		}
	}
	for _, w := range eogTexts {
		if id, ok := t.ids[w]; ok {
			eog[id] = true
			t.attrs[id] |= attrControl
		}
	}
	for _, w := range []string{"<|channel|>", "<|message|>", "<|start|>", "<|constrain|>"} {
		if id, ok := t.ids[w]; ok {
			t.attrs[id] = attrUserDefined
		}
	}
	for _, id := range []int32{t.eos, t.eot, t.eom} {
		if id != NoToken {
			eog[id] = true
		}
	}
	has := func(w string) (int32, bool) {
		id, ok := t.ids[w]
		return id, ok && eog[id]
	}
	// o200k_harmony and solar-open: "<|end|>" ends a message, not generation.
	_, hasReturn := has("<|return|>")
	_, hasCall := has("<|call|>")
	_, hasCalls := has("<|calls|>")
	_, hasFlush := has("<|flush|>")
	if endID, hasEnd := has("<|end|>"); hasEnd && ((hasReturn && (hasCall || hasCalls)) || ((hasCall || hasCalls) && hasFlush)) {
		delete(eog, endID)
		t.attrs[endID] = attrUserDefined
	}
	// gemma4 and paddleocr: "</s>" is not end of generation.
	if _, hasTR := has("<|tool_response>"); hasTR {
		if sID, hasS := has("</s>"); hasS {
			delete(eog, sID)
			t.attrs[sID] = attrNormal
		}
	}
	for id := range eog {
		if id >= 0 && int(id) < n {
			t.eog = append(t.eog, id)
		}
	}
	slices.Sort(t.eog)

	for id, a := range t.attrs {
		if a&(attrControl|attrUserDefined|attrUnknown) != 0 {
			t.special = append(t.special, int32(id))
		}
	}
	slices.SortStableFunc(t.special, func(a, b int32) int {
		return cmp.Compare(len(t.tokens[b]), len(t.tokens[a]))
	})

	// Per-model attributes llama.cpp sets by name.
	name := strings.ToLower(s.name)
	setAttr := func(w string, a attr, on bool) {
		if id, ok := t.ids[w]; ok {
			if on {
				t.attrs[id] |= a
			} else {
				t.attrs[id] &^= a
			}
		}
	}
	switch {
	case containsAny(s.pre, "jina-v2-de", "jina-v2-es", "jina-v2-code") || containsAny(s.arch, "nomic-bert-moe", "jina-bert-v3"):
		setAttr("<mask>", attrLStrip, true)
	case containsAny(name, "phi-3", "phi3"):
		for _, id := range t.special {
			t.attrs[id] |= attrRStrip
		}
		setAttr("</s>", attrRStrip, true)
		for _, w := range []string{"<unk>", "<s>", "<|endoftext|>"} {
			setAttr(w, attrRStrip, false)
		}
	case containsAny(name, "modern-bert"):
		setAttr("[MASK]", attrLStrip, true)
	}

	switch t.kind {
	case SPM:
		const hex = "0123456789ABCDEF"
		for b := 0; b < 256; b++ {
			t.byteToks[b] = NoToken
			if id, ok := t.ids["<0x"+string(hex[b>>4])+string(hex[b&15])+">"]; ok {
				t.byteToks[b] = id
			} else if id, ok := t.ids[string([]byte{byte(b)})]; ok {
				t.byteToks[b] = id
			} else if t.unk != NoToken {
				// llama.cpp throws here; the unknown token is the graceful equivalent.
				t.byteToks[b] = t.unk
			}
		}
	case BPE:
		p, err := newPreTokenizer(fam.regexes)
		if err != nil {
			return nil, err
		}
		t.pretok = p
	}
	return t, nil
}

func containsAny(s string, subs ...string) bool {
	for _, x := range subs {
		if strings.Contains(s, x) {
			return true
		}
	}
	return false
}
