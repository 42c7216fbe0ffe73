package chat

import (
	"errors"
	"fmt"
	"strings"
)

// ErrUnsupported marks a construct this Jinja subset does not implement.
// Callers fall back to Default when they see it.
var ErrUnsupported = errors.New("unsupported template construct")

// ErrSyntax marks a template that is not valid Jinja.
var ErrSyntax = errors.New("template syntax error")

// maxSource bounds a template's size: real chat templates are a few KB.
const maxSource = 256 << 10

type tokKind uint8

const (
	tText tokKind = iota
	tVarBegin
	tVarEnd
	tBlockBegin
	tBlockEnd
	tName
	tString
	tInt
	tFloat
	tOp
	tEOF
)

type token struct {
	kind tokKind
	val  string
	line int
}

// segment is a tag or text before whitespace control is applied.
type segment struct {
	kind        tokKind // tText, tVarBegin (a {{ }}), tBlockBegin (a {% %}) or 0xff for a comment
	text        string
	toks        []token
	stripBefore bool // {%- : trim the text before
	stripAfter  bool // -%} : trim the text after
	keepLstrip  bool // {%+ : no lstrip_blocks
	line        int
}

const segComment tokKind = 0xff

// lex splits src into tokens, applying whitespace control and HuggingFace's
// trim_blocks and lstrip_blocks.
func lex(src string) ([]token, error) {
	if len(src) > maxSource {
		return nil, fmt.Errorf("%w: template of %d bytes exceeds %d", ErrSyntax, len(src), maxSource)
	}
	var segs []segment
	line := 1
	pos := 0
	for pos < len(src) {
		i := indexTag(src, pos)
		if i < 0 {
			segs = append(segs, segment{kind: tText, text: src[pos:], line: line})
			break
		}
		if i > pos {
			segs = append(segs, segment{kind: tText, text: src[pos:i], line: line})
			line += strings.Count(src[pos:i], "\n")
		}
		open := src[i+1]
		p := i + 2
		seg := segment{line: line}
		if p < len(src) && src[p] == '-' {
			seg.stripBefore = true
			p++
		} else if p < len(src) && src[p] == '+' {
			seg.keepLstrip = true
			p++
		}
		switch open {
		case '#':
			end := strings.Index(src[p:], "#}")
			if end < 0 {
				return nil, fmt.Errorf("%w: line %d: unclosed comment", ErrSyntax, line)
			}
			body := src[p : p+end]
			seg.kind = segComment
			if strings.HasSuffix(body, "-") {
				seg.stripAfter = true
			}
			line += strings.Count(src[i:p+end+2], "\n")
			pos = p + end + 2
		default:
			closer := "}}"
			seg.kind = tVarBegin
			if open == '%' {
				closer, seg.kind = "%}", tBlockBegin
			}
			toks, n, stripAfter, err := lexExpr(src[p:], closer, line)
			if err != nil {
				return nil, err
			}
			seg.toks, seg.stripAfter = toks, stripAfter
			line += strings.Count(src[i:p+n], "\n")
			pos = p + n
		}
		segs = append(segs, seg)
	}
	// Whitespace control on the text segments around each tag.
	for i := range segs {
		s := &segs[i]
		if s.kind == tText {
			continue
		}
		block := s.kind == tBlockBegin || s.kind == segComment
		if i > 0 && segs[i-1].kind == tText {
			prev := &segs[i-1]
			switch {
			case s.stripBefore:
				prev.text = strings.TrimRight(prev.text, " \t\r\n")
			case block && !s.keepLstrip:
				// lstrip_blocks: blanks from the start of the line to the tag.
				j := strings.LastIndexByte(prev.text, '\n')
				if tail := prev.text[j+1:]; strings.Trim(tail, " \t") == "" && (j >= 0 || i-1 == 0) {
					prev.text = prev.text[:j+1]
				}
			}
		}
		if i+1 < len(segs) && segs[i+1].kind == tText {
			next := &segs[i+1]
			switch {
			case s.stripAfter:
				next.text = strings.TrimLeft(next.text, " \t\r\n")
			case block:
				// trim_blocks: the first newline after a block tag.
				if strings.HasPrefix(next.text, "\r\n") {
					next.text = next.text[2:]
				} else if strings.HasPrefix(next.text, "\n") {
					next.text = next.text[1:]
				}
			}
		}
	}
	var out []token
	for _, s := range segs {
		switch s.kind {
		case tText:
			if s.text != "" {
				out = append(out, token{kind: tText, val: s.text, line: s.line})
			}
		case tVarBegin:
			out = append(out, token{kind: tVarBegin, line: s.line})
			out = append(out, s.toks...)
			out = append(out, token{kind: tVarEnd, line: s.line})
		case tBlockBegin:
			out = append(out, token{kind: tBlockBegin, line: s.line})
			out = append(out, s.toks...)
			out = append(out, token{kind: tBlockEnd, line: s.line})
		}
	}
	return append(out, token{kind: tEOF, line: line}), nil
}

// indexTag finds the next "{{", "{%" or "{#" at or after pos.
func indexTag(src string, pos int) int {
	for {
		i := strings.IndexByte(src[pos:], '{')
		if i < 0 || pos+i+1 >= len(src) {
			return -1
		}
		switch src[pos+i+1] {
		case '{', '%', '#':
			return pos + i
		}
		pos += i + 1
	}
}

// lexExpr reads expression tokens up to closer ("}}" or "%}", optionally
// preceded by "-"), returning them and the bytes consumed.
func lexExpr(s, closer string, line int) (toks []token, n int, stripAfter bool, err error) {
	i := 0
	for {
		for i < len(s) && strings.IndexByte(" \t\r\n", s[i]) >= 0 {
			if s[i] == '\n' {
				line++
			}
			i++
		}
		if i >= len(s) {
			return nil, 0, false, fmt.Errorf("%w: line %d: unclosed tag, want %q", ErrSyntax, line, closer)
		}
		if strings.HasPrefix(s[i:], closer) {
			return toks, i + 2, false, nil
		}
		if s[i] == '-' && strings.HasPrefix(s[i+1:], closer) {
			return toks, i + 3, true, nil
		}
		c := s[i]
		switch {
		case c == '\'' || c == '"':
			str, m, err := lexString(s[i:], line)
			if err != nil {
				return nil, 0, false, err
			}
			toks = append(toks, token{kind: tString, val: str, line: line})
			line += strings.Count(s[i:i+m], "\n")
			i += m
		case isDigit(c):
			j := i
			for j < len(s) && (isDigit(s[j]) || s[j] == '_') {
				j++
			}
			kind := tInt
			if j+1 < len(s) && s[j] == '.' && isDigit(s[j+1]) {
				kind = tFloat
				j++
				for j < len(s) && isDigit(s[j]) {
					j++
				}
			}
			toks = append(toks, token{kind: kind, val: strings.ReplaceAll(s[i:j], "_", ""), line: line})
			i = j
		case isNameStart(c):
			j := i
			for j < len(s) && (isNameStart(s[j]) || isDigit(s[j])) {
				j++
			}
			toks = append(toks, token{kind: tName, val: s[i:j], line: line})
			i = j
		default:
			op := ""
			for _, o := range []string{"//", "**", "==", "!=", "<=", ">=", "+", "-", "*", "/", "%", "~", "<", ">", "(", ")", "[", "]", "{", "}", ".", ",", ":", "|", "="} {
				if strings.HasPrefix(s[i:], o) {
					op = o
					break
				}
			}
			if op == "" {
				return nil, 0, false, fmt.Errorf("%w: line %d: unexpected character %q", ErrSyntax, line, c)
			}
			toks = append(toks, token{kind: tOp, val: op, line: line})
			i += len(op)
		}
	}
}

// lexString reads a quoted string literal with Python's common escapes.
func lexString(s string, line int) (string, int, error) {
	q := s[0]
	var b strings.Builder
	for i := 1; i < len(s); i++ {
		c := s[i]
		switch {
		case c == q:
			return b.String(), i + 1, nil
		case c == '\\' && i+1 < len(s):
			i++
			switch s[i] {
			case 'n':
				b.WriteByte('\n')
			case 't':
				b.WriteByte('\t')
			case 'r':
				b.WriteByte('\r')
			case '\\', '\'', '"':
				b.WriteByte(s[i])
			default:
				b.WriteByte('\\')
				b.WriteByte(s[i])
			}
		default:
			b.WriteByte(c)
		}
	}
	return "", 0, fmt.Errorf("%w: line %d: unterminated string", ErrSyntax, line)
}

func isDigit(c byte) bool     { return c >= '0' && c <= '9' }
func isNameStart(c byte) bool { return c == '_' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' }
