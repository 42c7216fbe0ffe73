package tokenizer

import (
	"strings"
	"unicode/utf8"
)

// DecodeOptions controls DecodeWith and NewDecoder. The zero value is llama.cpp's
// llama_detokenize(tokens, remove_special=false, unparse_special=false) minus the
// clean-up pass, which makes Decode the inverse of Encode.
type DecodeOptions struct {
	// RenderSpecial writes control and unknown tokens as their text ("<s>",
	// "<|im_end|>") instead of nothing.
	RenderSpecial bool
	// CleanSpaces applies llama.cpp's clean_up_tokenization_spaces pass (" ," → ",",
	// " 's" → "'s" …) when the vocabulary asks for it. It is not invertible and is
	// ignored by the streaming Decoder.
	CleanSpaces bool
	// KeepLeadingSpace keeps the space SentencePiece vocabularies put before the
	// first word. Set it when decoding a continuation, whose first token's space
	// separates it from the prompt.
	KeepLeadingSpace bool
}

// Piece is the text token id stands for, as llama_token_to_piece(special=false):
// "▁" becomes a space, byte tokens become their byte (possibly part of a UTF-8
// character), control tokens become "". Out-of-range ids give "".
func (t *Tokenizer) Piece(id int32) string { return t.piece(id, false) }

func (t *Tokenizer) piece(id int32, special bool) string {
	if id < 0 || int(id) >= len(t.tokens) {
		return ""
	}
	a, text := t.attrs[id], t.tokens[id]
	if !special && a&(attrUnknown|attrControl) != 0 {
		return ""
	}
	switch {
	case a&(attrUnknown|attrControl|attrUserDefined) != 0:
		return text
	case a&attrNormal != 0:
		if t.kind == SPM {
			return strings.ReplaceAll(text, "▁", " ")
		}
		return decodeByteLevel(text)
	case a&attrByte != 0:
		return string([]byte{tokenByte(text)})
	}
	return ""
}

// tokenByte parses "<0xNN>" like llama.cpp's strtol(text.substr(3, 2), 16).
func tokenByte(text string) byte {
	var v byte
	for i := 3; i < len(text) && i < 5; i++ {
		c := text[i]
		switch {
		case c >= '0' && c <= '9':
			v = v<<4 | (c - '0')
		case c >= 'a' && c <= 'f':
			v = v<<4 | (c - 'a' + 10)
		case c >= 'A' && c <= 'F':
			v = v<<4 | (c - 'A' + 10)
		default:
			return v
		}
	}
	return v
}

// decodeByteLevel maps GPT-2's byte alphabet back to bytes; a code point outside it
// is written the way llama.cpp's llama_decode_text writes it.
func decodeByteLevel(text string) string {
	out := make([]byte, 0, len(text))
	for _, r := range decodeCodepoints(text, nil) {
		if r >= 0 && int(r) < len(runeToByte) && runeToByte[r] >= 0 {
			out = append(out, byte(runeToByte[r]))
			continue
		}
		out = append(out, "[UNK_BYTE_0x"...)
		for _, c := range appendCodepoint(nil, r) {
			const hex = "0123456789abcdef"
			out = append(out, hex[c>>4], hex[c&15])
		}
		out = append(out, text...)
		out = append(out, ']')
	}
	return string(out)
}

// Decode turns ids back into text: the pieces concatenated, control tokens
// omitted, and (SentencePiece) the space prefix of the first token removed, so
// Decode(Encode(s, false)) == s for valid UTF-8.
func (t *Tokenizer) Decode(ids []int32) string { return t.DecodeWith(ids, DecodeOptions{}) }

// DecodeWith is Decode with options.
func (t *Tokenizer) DecodeWith(ids []int32, o DecodeOptions) string {
	var b []byte
	strip := t.addSpacePrefix && !o.KeepLeadingSpace
	for _, id := range ids {
		p := t.piece(id, o.RenderSpecial)
		if strip && strings.HasPrefix(p, " ") {
			p = p[1:]
		}
		strip = false
		b = append(b, p...)
	}
	if o.CleanSpaces && t.cleanSpaces {
		b = cleanSpaces(b)
	}
	return string(b)
}

// cleanSpaces is llama.cpp's three in-place clean-up passes over detokenized text.
func cleanSpaces(text []byte) []byte {
	// " ?", " !", " .", " ,": drop the space.
	n := len(text)
	total := min(n, 1)
	for i := 1; i < n; i++ {
		x := text[i]
		if text[i-1] == ' ' && (x == '?' || x == '!' || x == '.' || x == ',') {
			total--
		}
		text[total] = x
		total++
	}
	// " ' ": keep only the apostrophe.
	n = total
	total = min(n, 1)
	for i := 1; i < n; i++ {
		x := text[i]
		if x == '\'' && i+1 < n && text[i-1] == ' ' && text[i+1] == ' ' {
			total--
			i++
			text[i] = 0
		}
		text[total] = x
		total++
	}
	// " 's", " 'm", " 're", " 've": join the contraction.
	n = total
	total = min(n, 1)
	for i := 1; i < n; i++ {
		x := text[i]
		if text[i-1] == ' ' && x == '\'' && i+1 < n {
			switch x1 := text[i+1]; {
			case x1 == 's' || x1 == 'm':
				total--
			case x1 == 't' || x1 == 'd':
			case i+2 < n:
				x2 := text[i+2]
				if (x1 == 'r' && x2 == 'e') || (x1 == 'v' && x2 == 'e') {
					total--
				}
			}
		}
		text[total] = x
		total++
	}
	return text[:total]
}

// Decoder turns a stream of generated ids into text as soon as it is complete:
// bytes of a UTF-8 character split across byte tokens are held back until the
// character is whole. Its output, concatenated and followed by Flush, equals
// DecodeWith of the same ids. A Decoder is not safe for concurrent use.
type Decoder struct {
	t       *Tokenizer
	o       DecodeOptions
	started bool
	pending []byte
}

// NewDecoder starts a streaming decode.
func (t *Tokenizer) NewDecoder(o DecodeOptions) *Decoder { return &Decoder{t: t, o: o} }

// Next adds one token and returns the text it completes, possibly "".
func (d *Decoder) Next(id int32) string {
	p := d.t.piece(id, d.o.RenderSpecial)
	if !d.started {
		d.started = true
		if d.t.addSpacePrefix && !d.o.KeepLeadingSpace && strings.HasPrefix(p, " ") {
			p = p[1:]
		}
	}
	d.pending = append(d.pending, p...)
	cut := len(d.pending)
	// Hold back a trailing sequence that is a valid but unfinished character.
	for i := len(d.pending) - 1; i >= 0 && i >= len(d.pending)-3; i-- {
		if utf8.RuneStart(d.pending[i]) {
			if !utf8.FullRune(d.pending[i:]) {
				cut = i
			}
			break
		}
	}
	out := string(d.pending[:cut])
	d.pending = append(d.pending[:0], d.pending[cut:]...)
	return out
}

// Flush returns whatever is held back (an incomplete character, as raw bytes) and
// resets the hold.
func (d *Decoder) Flush() string {
	out := string(d.pending)
	d.pending = d.pending[:0]
	return out
}
