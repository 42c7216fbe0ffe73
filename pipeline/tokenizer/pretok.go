package tokenizer

import (
	"fmt"
	"strings"

	"github.com/dlclark/regexp2"
)

// The two pre-tokenizer expressions llama.cpp recognises by their exact text and
// runs through hand-written scanners instead of a regex engine.
const (
	regexGPT2   = `'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)`
	regexLlama3 = `(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+`
	// regexLlama3Orig is the tokenizer.json spelling of regexLlama3.
	regexLlama3Orig = `(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+`
	regexQwen2      = `(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+`
)

// family is one of llama.cpp's pre-tokenizer types: the regexes applied in turn
// (each one splits the pieces the previous produced, keeping unmatched gaps as
// pieces of their own) and the flags llama.cpp sets with it.
type family struct {
	regexes      []string
	keepSpaces   bool // clean_spaces = false on decode
	ignoreMerges bool // a piece that is already a token is emitted whole
	addBOS       bool // add_bos default before the file's own flag is read
}

// families maps tokenizer.ggml.pre values to their rules, as llama-vocab.cpp does.
// Names it does not know are refused, as llama.cpp refuses them.
var families = func() map[string]family {
	llama3 := family{regexes: []string{regexLlama3}, ignoreMerges: true, addBOS: true}
	gpt2 := family{regexes: []string{regexGPT2}}
	starcoder := family{regexes: []string{`\p{N}`, regexGPT2}}
	qwen2 := family{regexes: []string{regexQwen2}, keepSpaces: true}
	deflt := family{regexes: []string{
		`[\p{P}\$\+<=>\^~\|]+`,
		regexGPT2,
		`\p{N}+`,
		`[0-9][0-9][0-9]`,
	}}
	m := map[string]family{
		"default": deflt,
		"deepseek-llm": {keepSpaces: true, regexes: []string{
			"[\r\n]",
			"\\s?[A-Za-zµÀ-ÖØ-öø-ƺƼ-ƿǄ-ʓʕ-ʯͰ-ͳͶͷͻ-ͽͿΆΈ-ΊΌΎ-ΡΣ-ϵϷ-ҁҊ-ԯԱ-ՖႠ-ჅᎠ-Ᏽᏸ-ᏽᲐ-ᲺᲽ-Ჿᴀ-ᴫᵫ-ᵷᵹ-ᶚḀ-ἕἘ-Ἕἠ-ὅὈ-Ὅὐ-ὗὙὛὝὟ-\u1f7dᾀ-ᾴᾶ-ᾼ\u1fbeῂ-ῄῆ-ῌῐ-\u1fd3ῖ-\u1fdbῠ-Ῥῲ-ῴῶ-ῼℂℇℊ-ℓℕℙ-ℝℤ\u2126ℨ\u212a-ℭℯ-ℴℹℼ-ℿⅅ-ⅉⅎↃↄⰀ-ⱻⱾ-ⳤⳫ-ⳮⳲⳳꙀ-ꙭꚀ-ꚛꜢ-ꝯꝱ-ꞇꞋ-ꞎꭰ-ꮿﬀ-ﬆﬓ-ﬗＡ-Ｚａ-ｚ𐐀-𐑏𐒰-𐓓𐓘-𐓻𐲀-𐲲𐳀-𐳲𑢠-𑣟𞤀-𞥃]+",
			`\s?[!-/:-~！-／：-～‘-‟　-。]+`,
			`\s+$`,
			`[一-龥ࠀ-一가-퟿]+`,
			`\p{N}+`,
		}},
		"deepseek-coder": {keepSpaces: true, regexes: []string{
			"[\r\n]",
			`\s?\p{L}+`,
			`\s?\p{P}+`,
			`[一-龥ࠀ-一가-퟿]+`,
			`\p{N}`,
		}},
		"falcon": {regexes: []string{
			`[\p{P}\$\+<=>\^~\|` + "`" + `]+`,
			regexGPT2,
			`[0-9][0-9][0-9]`,
		}},
		"mpt":          gpt2,
		"starcoder":    starcoder,
		"refact":       starcoder,
		"command-r":    {regexes: starcoder.regexes, keepSpaces: true},
		"smollm":       {regexes: starcoder.regexes, keepSpaces: true},
		"codeshell":    starcoder,
		"exaone":       starcoder,
		"minerva-7b":   starcoder,
		"olmo":         gpt2,
		"jais":         gpt2,
		"exaone4":      gpt2,
		"stablelm2":    {regexes: qwen2.regexes},
		"megrez":       {regexes: qwen2.regexes},
		"dbrx":         {regexes: []string{regexLlama3}},
		"smaug-bpe":    {regexes: []string{regexLlama3}},
		"chatglm-bpe":  {regexes: []string{regexLlama3}},
		"glm4":         {regexes: []string{regexLlama3}},
		"poro-chat":    {keepSpaces: true, regexes: []string{` ?[^(\s|.,!?…。，、।۔،)]+`}},
		"bloom":        {regexes: []string{` ?[^(\s|.,!?…。，、।۔،)]+`}},
		"gpt3-finnish": {regexes: []string{` ?[^(\s|.,!?…。，、।۔،)]+`}},
		"viking":       {keepSpaces: true, regexes: []string{` ?[^(\s|.,!?…。，、।۔،)]+`, `\p{N}`}},
		"chameleon": {keepSpaces: true, addBOS: true, regexes: []string{
			`<sentinel:[0-9]+>`,
			`(IMGIMG)((A|B|C|D|E|F|G|H|I){1,4})Z`,
			`([\t\n]|    |  )`,
			`\p{N}`,
			`[\p{P}!-/:-@\[-` + "`" + `{-~]`,
			regexGPT2,
		}},
	}
	for _, n := range []string{"llama3", "llama-v3", "llama-bpe", "falcon3", "falcon-h1", "pixtral", "midm-2.0", "lfm2"} {
		m[n] = llama3
	}
	for _, n := range []string{"gpt-2", "phi-2", "jina-es", "jina-de", "gigachat", "jina-v2-es", "jina-v2-de", "a.x-4.0", "mellum", "modern-bert", "jina-v1-en", "jina-v2-code", "roberta-bpe"} {
		m[n] = gpt2
	}
	for _, n := range []string{"qwen2", "deepseek-r1-qwen", "kormo"} {
		m[n] = qwen2
	}
	return m
}()

// splitStep is one regex of a family, compiled for how llama.cpp runs it.
type splitStep struct {
	kind int // stepGPT2, stepLlama3 or stepRegex
	re   *regexp2.Regexp
	// collapsed: the regex uses \p{…} classes and runs over the text with every
	// non-ASCII code point replaced by a placeholder for its category, as llama.cpp's
	// std::regex fallback does. Otherwise it runs over the code points themselves.
	collapsed bool
}

const (
	stepGPT2 = iota
	stepLlama3
	stepRegex
)

// preTokenizer splits text into the pieces BPE merges never cross.
type preTokenizer struct {
	steps        []splitStep
	needCollapse bool
	needWide     bool
}

// unicode category placeholders in collapsed text, as in llama.cpp.
const (
	collapseOther  = 0xD0
	collapseNumber = 0xD1
	collapseLetter = 0xD2
	collapsePunct  = 0xD3
	collapseMark   = 0xD4
	collapseSymbol = 0xD5
)

// ucats are the \p{…} classes llama.cpp's collapse handles, with their placeholder
// and the ASCII members the class keeps (ASCII is never collapsed). Note \p{S}'s
// ASCII list lacks '~', as llama.cpp's does.
var ucats = []struct {
	name  string
	place rune
	ascii string
}{
	{`\p{N}`, collapseNumber, `0-9`},
	{`\p{L}`, collapseLetter, `A-Za-z`},
	{`\p{P}`, collapsePunct, `!-#%-*,-/:-;?-@\[-\]_\{\}`},
	{`\p{M}`, collapseMark, ``},
	{`\p{S}`, collapseSymbol, `\$\+<->\^` + "`" + `\|`},
	{`\p{Lu}`, collapseLetter, `A-Za-z`},
	{`\p{Ll}`, collapseLetter, `A-Za-z`},
	{`\p{Lt}`, collapseLetter, `A-Za-z`},
	{`\p{Lm}`, collapseLetter, `A-Za-z`},
	{`\p{Lo}`, collapseLetter, `A-Za-z`},
}

func usesCategories(expr string) bool {
	for _, u := range ucats {
		if strings.Contains(expr, u.name) {
			return true
		}
	}
	return false
}

func newPreTokenizer(regexes []string) (*preTokenizer, error) {
	p := &preTokenizer{}
	for _, expr := range regexes {
		switch expr {
		case regexGPT2:
			p.steps = append(p.steps, splitStep{kind: stepGPT2})
			continue
		case regexLlama3, regexLlama3Orig:
			p.steps = append(p.steps, splitStep{kind: stepLlama3})
			continue
		}
		collapsed := usesCategories(expr)
		src := expr
		if collapsed {
			var err error
			if src, err = collapseRegex(expr); err != nil {
				return nil, err
			}
			p.needCollapse = true
		} else {
			p.needWide = true
		}
		translated, err := toRegexp2(src)
		if err != nil {
			return nil, fmt.Errorf("%w: pre-tokenizer regex %q: %v", ErrInvalid, expr, err)
		}
		re, err := regexp2.Compile(translated, regexp2.None)
		if err != nil {
			return nil, fmt.Errorf("%w: pre-tokenizer regex %q: %v", ErrInvalid, expr, err)
		}
		p.steps = append(p.steps, splitStep{kind: stepRegex, re: re, collapsed: collapsed})
	}
	return p, nil
}

// collapseRegex rewrites \p{…} classes into placeholder classes, tracking brackets
// the way llama.cpp does (a class cannot nest, so inside one only the members are
// written).
func collapseRegex(expr string) (string, error) {
	for i := 0; i < len(expr); i++ {
		if expr[i] >= 0x80 {
			return "", fmt.Errorf("%w: regex %q mixes unicode categories and non-ASCII characters", ErrInvalid, expr)
		}
	}
	var b strings.Builder
	inside := false
	for i := 0; i < len(expr); i++ {
		c := expr[i]
		if c == '[' && (i == 0 || expr[i-1] != '\\') {
			b.WriteByte('[')
			inside = true
			continue
		}
		if inside && c == ']' && expr[i-1] != '\\' {
			b.WriteByte(']')
			inside = false
			continue
		}
		if c == '\\' && i+3 < len(expr) && expr[i+1] == 'p' && expr[i+2] == '{' {
			if end := strings.IndexByte(expr[i+3:], '}'); end >= 0 && i+3+end <= i+10 {
				pat := expr[i : i+3+end+1]
				found := false
				for _, u := range ucats {
					if u.name == pat {
						if !inside {
							b.WriteByte('[')
						}
						b.WriteRune(u.place)
						b.WriteString(u.ascii)
						if !inside {
							b.WriteByte(']')
						}
						found = true
						break
					}
				}
				if found {
					i += len(pat) - 1
					continue
				}
			}
		}
		b.WriteByte(c)
	}
	return b.String(), nil
}

// toRegexp2 restates an ECMAScript (std::regex, "C" locale) expression in
// regexp2's syntax: \s, \d, \w are ASCII classes there, '$' only matches at the
// very end and '.' excludes both line terminators.
func toRegexp2(expr string) (string, error) {
	const space = ` \t\n\v\f\r`
	var b strings.Builder
	inside := false
	rs := []rune(expr)
	for i := 0; i < len(rs); i++ {
		c := rs[i]
		switch {
		case c == '\\' && i+1 < len(rs):
			n := rs[i+1]
			i++
			var in, out string
			switch n {
			case 's':
				in, out = space, "["+space+"]"
			case 'S':
				in, out = "", "[^"+space+"]"
			case 'd':
				in, out = "0-9", "[0-9]"
			case 'D':
				in, out = "", "[^0-9]"
			case 'w':
				in, out = "A-Za-z0-9_", "[A-Za-z0-9_]"
			case 'W':
				in, out = "", "[^A-Za-z0-9_]"
			default:
				b.WriteRune('\\')
				b.WriteRune(n)
				continue
			}
			if inside {
				if in == "" {
					return "", fmt.Errorf("negated class escape \\%c inside a bracket", n)
				}
				b.WriteString(in)
			} else {
				b.WriteString(out)
			}
		case c == '[' && !inside:
			inside = true
			b.WriteRune(c)
			if i+1 < len(rs) && rs[i+1] == '^' {
				b.WriteRune('^')
				i++
			}
			if i+1 < len(rs) && rs[i+1] == ']' { // ECMAScript: "[]" is an empty class
				return "", fmt.Errorf("empty character class")
			}
		case c == ']' && inside:
			inside = false
			b.WriteRune(c)
		case c == '$' && !inside:
			b.WriteString(`\z`)
		case c == '.' && !inside:
			b.WriteString(`[^\n\r]`)
		case (c == '[' || c == '-') && inside:
			if c == '[' {
				b.WriteString(`\[`)
			} else {
				b.WriteRune(c)
			}
		default:
			b.WriteRune(c)
		}
	}
	return b.String(), nil
}

// pieceScratch holds the buffers one split reuses.
type pieceScratch struct {
	cpts, collapsed, wide []rune
	offsets, next         []int
	buf                   []byte
}

// split cuts text into pre-tokenized pieces, each returned as its code points'
// UTF-8 bytes (byteLevel: mapped through the GPT-2 byte alphabet).
func (p *preTokenizer) split(text string, byteLevel bool, sc *pieceScratch, emit func(piece string)) {
	sc.cpts = decodeCodepoints(text, sc.cpts)
	cpts := sc.cpts
	if len(cpts) == 0 {
		return
	}
	if p.needCollapse {
		sc.collapsed = sc.collapsed[:0]
		for _, r := range cpts {
			if r < 128 {
				sc.collapsed = append(sc.collapsed, r)
				continue
			}
			f := flagsOf(r)
			var c rune
			switch {
			case f.is(flagWhitespace):
				c = 0x0B
			case f.is(flagNumber):
				c = collapseNumber
			case f.is(flagLetter):
				c = collapseLetter
			case f.is(flagPunct):
				c = collapsePunct
			case f.is(flagMark):
				c = collapseMark
			case f.is(flagSymbol):
				c = collapseSymbol
			default:
				c = collapseOther
			}
			sc.collapsed = append(sc.collapsed, c)
		}
	}
	if p.needWide {
		sc.wide = append(sc.wide[:0], cpts...)
		for i, r := range sc.wide {
			if r > 0x7F && flagsOf(r).is(flagWhitespace) {
				sc.wide[i] = 0x0B
			}
		}
	}
	sc.offsets = append(sc.offsets[:0], len(cpts))
	for _, st := range p.steps {
		sc.next = sc.next[:0]
		switch st.kind {
		case stepGPT2:
			sc.next = splitGPT2(cpts, sc.offsets, sc.next)
		case stepLlama3:
			sc.next = splitLlama3(cpts, sc.offsets, sc.next)
		default:
			src := sc.wide
			if st.collapsed {
				src = sc.collapsed
			}
			sc.next = splitRegex(st.re, src, sc.offsets, sc.next)
		}
		sc.offsets, sc.next = sc.next, sc.offsets
	}
	start := 0
	for _, n := range sc.offsets {
		b := sc.buf[:0]
		for _, r := range cpts[start : start+n] {
			b = appendCodepoint(b, r)
		}
		start += n
		if byteLevel {
			raw := string(b)
			b = b[:0]
			for i := 0; i < len(raw); i++ {
				b = appendCodepoint(b, byteToRune[raw[i]])
			}
		}
		sc.buf = b
		emit(string(b))
	}
}

// splitRegex is llama.cpp's std::regex split: within each piece, every match
// becomes a piece and so does every gap between matches.
func splitRegex(re *regexp2.Regexp, text []rune, offsets, out []int) []int {
	start := 0
	for _, off := range offsets {
		chunk := text[start : start+off]
		start += off
		last := 0
		m, err := re.FindRunesMatch(chunk)
		for err == nil && m != nil {
			if m.Length > 0 {
				if m.Index > last {
					out = append(out, m.Index-last)
				}
				out = append(out, m.Length)
				last = m.Index + m.Length
			}
			m, err = re.FindNextMatch(m)
		}
		if last < off {
			out = append(out, off-last)
		}
	}
	return out
}

// chunkView gives the hand-written splitters llama.cpp's view of one piece: code
// points and flags inside it, "out of range" outside.
type chunkView struct {
	cpts     []rune
	ini, end int
}

const outOfRange = -1

func (v chunkView) cpt(p int) rune {
	if p >= v.ini && p < v.end {
		return v.cpts[p]
	}
	return outOfRange
}

func (v chunkView) flags(p int) cpFlags {
	if p >= v.ini && p < v.end {
		return flagsOf(v.cpts[p])
	}
	return 0
}

const flagsWLN = flagWhitespace | flagLetter | flagNumber

// splitGPT2 scans 's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)
// (with \s+ for what is left), exactly as llama.cpp's unicode_regex_split_custom_gpt2.
func splitGPT2(cpts []rune, offsets, out []int) []int {
	start := 0
	for _, off := range offsets {
		v := chunkView{cpts, start, start + off}
		start += off
		for pos := v.ini; pos < v.end; {
			c, f := v.cpt(pos), v.flags(pos)
			if c == '\'' && pos+1 < v.end {
				n := v.cpt(pos + 1)
				if n == 's' || n == 't' || n == 'm' || n == 'd' {
					out = append(out, 2)
					pos += 2
					continue
				}
				if pos+2 < v.end {
					nn := v.cpt(pos + 2)
					if (n == 'r' && nn == 'e') || (n == 'v' && nn == 'e') || (n == 'l' && nn == 'l') {
						out = append(out, 3)
						pos += 3
						continue
					}
				}
			}
			begin := pos
			f2 := f
			if c == ' ' {
				f2 = v.flags(pos + 1)
			}
			switch {
			case f2.is(flagLetter), f2.is(flagNumber):
				class := f2 & (flagLetter | flagNumber)
				if c == ' ' {
					pos++
				}
				for f2&class != 0 {
					pos++
					f2 = v.flags(pos)
				}
			case f2&flagsWLN == 0 && f2 != 0:
				if c == ' ' {
					pos++
				}
				for f2&flagsWLN == 0 && f2 != 0 {
					pos++
					f2 = v.flags(pos)
				}
			default:
				nws := 0
				for v.flags(pos + nws).is(flagWhitespace) {
					nws++
				}
				switch {
				case nws > 1 && v.cpt(pos+nws) != outOfRange:
					pos += nws - 1
				case nws > 0:
					pos += nws
				default:
					pos++
				}
			}
			out = append(out, pos-begin)
		}
	}
	return out
}

// asciiLower lowers A-Z; llama.cpp's unicode_tolower agrees on every code point
// the contraction checks compare against.
func asciiLower(r rune) rune {
	if r >= 'A' && r <= 'Z' {
		return r + 'a' - 'A'
	}
	return r
}

// splitLlama3 scans the Llama 3 expression exactly as llama.cpp's
// unicode_regex_split_custom_llama3 does.
func splitLlama3(cpts []rune, offsets, out []int) []int {
	start := 0
	for _, off := range offsets {
		v := chunkView{cpts, start, start + off}
		start += off
		prev := v.ini
		add := func(end int) {
			if end > prev {
				out = append(out, end-prev)
			}
			prev = end
		}
		for pos := v.ini; pos < v.end; {
			c, f := v.cpt(pos), v.flags(pos)
			if c == '\'' && pos+1 < v.end {
				n := asciiLower(v.cpt(pos + 1))
				if n == 's' || n == 't' || n == 'm' || n == 'd' {
					pos += 2
					add(pos)
					continue
				}
				if pos+2 < v.end {
					nn := asciiLower(v.cpt(pos + 2))
					if (n == 'r' && nn == 'e') || (n == 'v' && nn == 'e') || (n == 'l' && nn == 'l') {
						pos += 3
						add(pos)
						continue
					}
				}
			}
			if !(c == '\r' || c == '\n' || f.is(flagNumber)) {
				if f.is(flagLetter) || v.flags(pos+1).is(flagLetter) {
					pos++
					for v.flags(pos).is(flagLetter) {
						pos++
					}
					add(pos)
					continue
				}
			}
			if f.is(flagNumber) {
				ini := pos
				for v.flags(pos).is(flagNumber) {
					pos++
					if pos-ini >= 3 {
						add(pos)
						ini = pos
					}
				}
				add(pos)
				continue
			}
			f2 := f
			if c == ' ' {
				f2 = v.flags(pos + 1)
			}
			if f2&flagsWLN == 0 && f != 0 {
				if c == ' ' {
					pos++
				}
				for f2&flagsWLN == 0 && f2 != 0 {
					pos++
					f2 = v.flags(pos)
				}
				for c2 := v.cpt(pos); c2 == '\r' || c2 == '\n'; c2 = v.cpt(pos) {
					pos++
				}
				add(pos)
				continue
			}
			nws, lastRN := 0, 0
			for v.flags(pos + nws).is(flagWhitespace) {
				if c2 := v.cpt(pos + nws); c2 == '\r' || c2 == '\n' {
					lastRN = pos + nws + 1
				}
				nws++
			}
			switch {
			case lastRN > 0:
				pos = lastRN
			case nws > 1 && v.cpt(pos+nws) != outOfRange:
				pos += nws - 1
			case nws > 0:
				pos += nws
			default:
				pos++
			}
			add(pos)
		}
	}
	return out
}
