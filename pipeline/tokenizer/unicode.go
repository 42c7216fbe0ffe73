package tokenizer

import "unicode"

// cpFlags is the per-code-point classification llama.cpp's pre-tokenizers work with:
// one general-category bit (\p{N}, \p{L}, \p{Z}, \p{M}, \p{P}, \p{S}, \p{C}, or
// undefined) plus a whitespace bit. The zero value means "outside the current chunk",
// which the hand-written splitters rely on to stop at chunk boundaries.
type cpFlags uint16

const (
	flagUndefined cpFlags = 1 << iota
	flagNumber
	flagLetter
	flagSeparator
	flagMark
	flagPunct
	flagSymbol
	flagControl
	flagWhitespace
)

func (f cpFlags) is(bit cpFlags) bool { return f&bit != 0 }

// asciiFlags is a read-only table for the code points every text is full of.
var asciiFlags = func() (t [128]cpFlags) {
	for r := rune(0); r < 128; r++ {
		t[r] = categoryFlags(r)
	}
	return t
}()

// flagsOf classifies a code point the way llama.cpp's unicode tables do (Unicode
// 15.1; Go's tables are 15.0, so the 15.1 additions are patched in by hand).
func flagsOf(r rune) cpFlags {
	if r >= 0 && r < 128 {
		return asciiFlags[r]
	}
	return categoryFlags(r)
}

func categoryFlags(r rune) cpFlags {
	if r < 0 || r > unicode.MaxRune {
		return flagUndefined
	}
	var f cpFlags
	switch {
	case unicode.IsLetter(r):
		f = flagLetter
	case unicode.IsNumber(r):
		f = flagNumber
	case unicode.IsMark(r):
		f = flagMark
	case unicode.IsPunct(r):
		f = flagPunct
	case unicode.IsSymbol(r):
		f = flagSymbol
	case unicode.Is(unicode.Z, r):
		f = flagSeparator
	case unicode.Is(unicode.C, r):
		f = flagControl
	case r >= 0x2EBF0 && r <= 0x2EE5D: // CJK Extension I (Unicode 15.1)
		f = flagLetter
	case r >= 0x2FFC && r <= 0x2FFF, r == 0x31EF: // ideographic description (15.1)
		f = flagSymbol
	default:
		f = flagUndefined
	}
	// unicode.IsSpace is exactly llama.cpp's whitespace set: \t-\r, space, U+0085,
	// U+00A0 and the White_Space property above Latin-1.
	if unicode.IsSpace(r) {
		f |= flagWhitespace
	}
	return f
}

// decodeCodepoints splits text into code points exactly as llama.cpp's
// unicode_cpts_from_utf8 does: it checks only the continuation-byte pattern (so
// overlong forms and surrogates decode to their values) and turns every byte it
// cannot decode into U+FFFD, one per byte. Values above U+10FFFF, which llama.cpp
// cannot re-encode, become U+FFFD too.
func decodeCodepoints(s string, out []rune) []rune {
	out = out[:0]
	n := len(s)
	for i := 0; i < n; {
		c := s[i]
		switch {
		case c < 0x80:
			out = append(out, rune(c))
			i++
			continue
		case c&0x40 == 0:
		case c&0x20 == 0:
			if i+1 < n && s[i+1]&0xC0 == 0x80 {
				out = append(out, rune(c&0x1F)<<6|rune(s[i+1]&0x3F))
				i += 2
				continue
			}
		case c&0x10 == 0:
			if i+2 < n && s[i+1]&0xC0 == 0x80 && s[i+2]&0xC0 == 0x80 {
				out = append(out, rune(c&0x0F)<<12|rune(s[i+1]&0x3F)<<6|rune(s[i+2]&0x3F))
				i += 3
				continue
			}
		case c&0x08 == 0:
			if i+3 < n && s[i+1]&0xC0 == 0x80 && s[i+2]&0xC0 == 0x80 && s[i+3]&0xC0 == 0x80 {
				r := rune(c&0x07)<<18 | rune(s[i+1]&0x3F)<<12 | rune(s[i+2]&0x3F)<<6 | rune(s[i+3]&0x3F)
				if r > unicode.MaxRune {
					r = unicode.ReplacementChar
				}
				out = append(out, r)
				i += 4
				continue
			}
		}
		out = append(out, unicode.ReplacementChar)
		i++
	}
	return out
}

// appendCodepoint encodes r as UTF-8 without Go's surrogate check, mirroring
// unicode_cpt_to_utf8 (a decoded surrogate round-trips to its three bytes).
func appendCodepoint(b []byte, r rune) []byte {
	switch {
	case r < 0x80:
		return append(b, byte(r))
	case r < 0x800:
		return append(b, 0xC0|byte(r>>6), 0x80|byte(r)&0x3F)
	case r < 0x10000:
		return append(b, 0xE0|byte(r>>12), 0x80|byte(r>>6)&0x3F, 0x80|byte(r)&0x3F)
	default:
		return append(b, 0xF0|byte(r>>18)&0x07, 0x80|byte(r>>12)&0x3F, 0x80|byte(r>>6)&0x3F, 0x80|byte(r)&0x3F)
	}
}

// utf8Len is llama.cpp's unicode_len_utf8: the sequence length announced by a lead
// byte's high nibble, 1 for continuation bytes.
func utf8Len(c byte) int {
	switch c >> 4 {
	case 0xC, 0xD:
		return 2
	case 0xE:
		return 3
	case 0xF:
		return 4
	}
	return 1
}

// isCSpace is C's isspace in the "C" locale, which llama.cpp uses to strip around
// special tokens.
func isCSpace(c byte) bool {
	return c == ' ' || (c >= '\t' && c <= '\r')
}

// byteToRune is GPT-2's reversible byte→printable-code-point table.
var byteToRune, runeToByte = func() (b2r [256]rune, r2b [324]int16) {
	for i := range r2b {
		r2b[i] = -1
	}
	n := 0
	for c := 0; c < 256; c++ {
		printable := (c >= 0x21 && c <= 0x7E) || (c >= 0xA1 && c <= 0xAC) || (c >= 0xAE && c <= 0xFF)
		if printable {
			b2r[c] = rune(c)
		} else {
			b2r[c] = rune(256 + n)
			n++
		}
		r2b[b2r[c]] = int16(c)
	}
	return
}()
