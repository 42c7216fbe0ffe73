package chat

import (
	"fmt"
	"strconv"
)

// maxDepth bounds nesting (blocks and expressions), so hostile templates cannot
// exhaust the stack.
const maxDepth = 64

// Statements.
type (
	node any

	textNode   struct{ s string }
	outputNode struct{ x expr }
	ifNode     struct {
		conds  []expr
		bodies [][]node
		els    []node
	}
	forNode struct {
		vars []string
		iter expr
		cond expr
		body []node
		els  []node
	}
	setNode struct {
		name, attr string // attr set for "set ns.attr = x"
		x          expr
	}
)

// Expressions.
type (
	expr any

	literal  struct{ v any }
	nameRef  struct{ name string }
	attrExpr struct {
		x    expr
		name string
	}
	indexExpr struct{ x, i expr }
	sliceExpr struct{ x, lo, hi, step expr }
	callExpr  struct {
		fn     expr
		args   []expr
		kwargs []kwarg
	}
	filterExpr struct {
		x      expr
		name   string
		args   []expr
		kwargs []kwarg
	}
	testExpr struct {
		x      expr
		name   string
		args   []expr
		negate bool
	}
	unaryExpr struct {
		op string
		x  expr
	}
	binaryExpr struct {
		op   string
		l, r expr
	}
	condExpr struct{ then, cond, els expr }
	listExpr struct{ items []expr }
	dictExpr struct{ keys, vals []expr }
)

type kwarg struct {
	name string
	x    expr
}

type parser struct {
	toks  []token
	pos   int
	depth int
}

func (p *parser) peek() token { return p.toks[p.pos] }
func (p *parser) next() token {
	t := p.toks[p.pos]
	if t.kind != tEOF {
		p.pos++
	}
	return t
}

func (p *parser) errf(format string, args ...any) error {
	return fmt.Errorf("%w: line %d: %s", ErrSyntax, p.peek().line, fmt.Sprintf(format, args...))
}

func (p *parser) isOp(v string) bool {
	t := p.peek()
	return t.kind == tOp && t.val == v
}

func (p *parser) isName(v string) bool {
	t := p.peek()
	return t.kind == tName && t.val == v
}

func (p *parser) expectOp(v string) error {
	if !p.isOp(v) {
		return p.errf("want %q, got %q", v, p.peek().val)
	}
	p.next()
	return nil
}

func (p *parser) enter() error {
	p.depth++
	if p.depth > maxDepth {
		return p.errf("nested deeper than %d", maxDepth)
	}
	return nil
}

// parseBody reads nodes until a block tag whose keyword is in stop, returning
// that keyword (the tag's tokens after it are left to the caller).
func (p *parser) parseBody(stop ...string) ([]node, string, error) {
	if err := p.enter(); err != nil {
		return nil, "", err
	}
	defer func() { p.depth-- }()
	var body []node
	for {
		t := p.next()
		switch t.kind {
		case tEOF:
			if len(stop) > 0 {
				return nil, "", p.errf("missing {%% %s %%}", stop[len(stop)-1])
			}
			return body, "", nil
		case tText:
			body = append(body, &textNode{t.val})
		case tVarBegin:
			x, err := p.parseExpr()
			if err != nil {
				return nil, "", err
			}
			if p.peek().kind != tVarEnd {
				return nil, "", p.errf("want }}, got %q", p.peek().val)
			}
			p.next()
			body = append(body, &outputNode{x})
		case tBlockBegin:
			kw := p.next()
			if kw.kind != tName {
				return nil, "", p.errf("want a statement keyword")
			}
			for _, s := range stop {
				if kw.val == s {
					return body, s, nil
				}
			}
			n, err := p.parseStatement(kw.val)
			if err != nil {
				return nil, "", err
			}
			body = append(body, n)
		default:
			return nil, "", p.errf("unexpected %q", t.val)
		}
	}
}

func (p *parser) endTag() error {
	if p.peek().kind != tBlockEnd {
		return p.errf("want %%}, got %q", p.peek().val)
	}
	p.next()
	return nil
}

func (p *parser) parseStatement(kw string) (node, error) {
	switch kw {
	case "if":
		n := &ifNode{}
		for {
			c, err := p.parseExpr()
			if err != nil {
				return nil, err
			}
			if err := p.endTag(); err != nil {
				return nil, err
			}
			body, end, err := p.parseBody("elif", "else", "endif")
			if err != nil {
				return nil, err
			}
			n.conds, n.bodies = append(n.conds, c), append(n.bodies, body)
			switch end {
			case "elif":
				continue
			case "else":
				if err := p.endTag(); err != nil {
					return nil, err
				}
				if n.els, _, err = p.parseBody("endif"); err != nil {
					return nil, err
				}
			}
			return n, p.endTag()
		}
	case "for":
		n := &forNode{}
		for {
			t := p.next()
			if t.kind != tName {
				return nil, p.errf("want a loop variable")
			}
			n.vars = append(n.vars, t.val)
			if !p.isOp(",") {
				break
			}
			p.next()
		}
		if !p.isName("in") {
			return nil, p.errf("want in")
		}
		p.next()
		var err error
		if n.iter, err = p.parseOr(); err != nil {
			return nil, err
		}
		if p.isName("if") {
			p.next()
			if n.cond, err = p.parseOr(); err != nil {
				return nil, err
			}
		}
		if p.isName("recursive") {
			return nil, fmt.Errorf("%w: recursive loops", ErrUnsupported)
		}
		if err := p.endTag(); err != nil {
			return nil, err
		}
		body, end, err := p.parseBody("else", "endfor")
		if err != nil {
			return nil, err
		}
		n.body = body
		if end == "else" {
			if err := p.endTag(); err != nil {
				return nil, err
			}
			if n.els, _, err = p.parseBody("endfor"); err != nil {
				return nil, err
			}
		}
		return n, p.endTag()
	case "set":
		t := p.next()
		if t.kind != tName {
			return nil, p.errf("want a name after set")
		}
		n := &setNode{name: t.val}
		if p.isOp(".") {
			p.next()
			a := p.next()
			if a.kind != tName {
				return nil, p.errf("want an attribute name")
			}
			n.attr = a.val
		}
		if p.peek().kind == tBlockEnd {
			return nil, fmt.Errorf("%w: block set ({%% set %s %%}…{%% endset %%})", ErrUnsupported, t.val)
		}
		if err := p.expectOp("="); err != nil {
			return nil, err
		}
		x, err := p.parseExpr()
		if err != nil {
			return nil, err
		}
		n.x = x
		return n, p.endTag()
	}
	return nil, fmt.Errorf("%w: line %d: {%% %s %%}", ErrUnsupported, p.peek().line, kw)
}

// parseExpr: a conditional expression, "a if c else b".
func (p *parser) parseExpr() (expr, error) {
	if err := p.enter(); err != nil {
		return nil, err
	}
	defer func() { p.depth-- }()
	x, err := p.parseOr()
	if err != nil {
		return nil, err
	}
	for p.isName("if") {
		p.next()
		c, err := p.parseOr()
		if err != nil {
			return nil, err
		}
		var els expr = &literal{undefined{}}
		if p.isName("else") {
			p.next()
			if els, err = p.parseOr(); err != nil {
				return nil, err
			}
		}
		x = &condExpr{then: x, cond: c, els: els}
	}
	return x, nil
}

func (p *parser) parseOr() (expr, error) {
	x, err := p.parseAnd()
	for err == nil && p.isName("or") {
		p.next()
		var r expr
		r, err = p.parseAnd()
		x = &binaryExpr{op: "or", l: x, r: r}
	}
	return x, err
}

func (p *parser) parseAnd() (expr, error) {
	x, err := p.parseNot()
	for err == nil && p.isName("and") {
		p.next()
		var r expr
		r, err = p.parseNot()
		x = &binaryExpr{op: "and", l: x, r: r}
	}
	return x, err
}

func (p *parser) parseNot() (expr, error) {
	if p.isName("not") {
		p.next()
		if err := p.enter(); err != nil {
			return nil, err
		}
		defer func() { p.depth-- }()
		x, err := p.parseNot()
		return &unaryExpr{op: "not", x: x}, err
	}
	return p.parseCompare()
}

func (p *parser) parseCompare() (expr, error) {
	x, err := p.parseAdd()
	if err != nil {
		return nil, err
	}
	for {
		t := p.peek()
		var op string
		switch {
		case t.kind == tOp && (t.val == "==" || t.val == "!=" || t.val == "<" || t.val == ">" || t.val == "<=" || t.val == ">="):
			op = t.val
			p.next()
		case t.kind == tName && t.val == "in":
			op = "in"
			p.next()
		case t.kind == tName && t.val == "not" && p.toks[p.pos+1].kind == tName && p.toks[p.pos+1].val == "in":
			op = "not in"
			p.next()
			p.next()
		default:
			return x, nil
		}
		r, err := p.parseAdd()
		if err != nil {
			return nil, err
		}
		x = &binaryExpr{op: op, l: x, r: r}
	}
}

func (p *parser) parseAdd() (expr, error) {
	x, err := p.parseConcat()
	for err == nil && (p.isOp("+") || p.isOp("-")) {
		op := p.next().val
		var r expr
		r, err = p.parseConcat()
		x = &binaryExpr{op: op, l: x, r: r}
	}
	return x, err
}

func (p *parser) parseConcat() (expr, error) {
	x, err := p.parseMul()
	for err == nil && p.isOp("~") {
		p.next()
		var r expr
		r, err = p.parseMul()
		x = &binaryExpr{op: "~", l: x, r: r}
	}
	return x, err
}

func (p *parser) parseMul() (expr, error) {
	x, err := p.parseUnary()
	for err == nil && (p.isOp("*") || p.isOp("/") || p.isOp("//") || p.isOp("%")) {
		op := p.next().val
		var r expr
		r, err = p.parseUnary()
		x = &binaryExpr{op: op, l: x, r: r}
	}
	return x, err
}

func (p *parser) parseUnary() (expr, error) {
	if p.isOp("-") || p.isOp("+") {
		op := p.next().val
		if err := p.enter(); err != nil {
			return nil, err
		}
		defer func() { p.depth-- }()
		x, err := p.parseUnary()
		return &unaryExpr{op: op, x: x}, err
	}
	if p.isOp("**") {
		return nil, fmt.Errorf("%w: line %d: ** operator", ErrUnsupported, p.peek().line)
	}
	x, err := p.parsePrimary()
	if err != nil {
		return nil, err
	}
	return p.parsePostfix(x)
}

func (p *parser) parsePostfix(x expr) (expr, error) {
	for {
		switch {
		case p.isOp("."):
			p.next()
			t := p.next()
			if t.kind != tName && t.kind != tInt {
				return nil, p.errf("want an attribute name")
			}
			x = &attrExpr{x: x, name: t.val}
		case p.isOp("["):
			p.next()
			var err error
			if x, err = p.parseSubscript(x); err != nil {
				return nil, err
			}
		case p.isOp("("):
			p.next()
			args, kwargs, err := p.parseArgs()
			if err != nil {
				return nil, err
			}
			x = &callExpr{fn: x, args: args, kwargs: kwargs}
		case p.isOp("|"):
			p.next()
			t := p.next()
			if t.kind != tName {
				return nil, p.errf("want a filter name")
			}
			f := &filterExpr{x: x, name: t.val}
			if p.isOp("(") {
				p.next()
				var err error
				if f.args, f.kwargs, err = p.parseArgs(); err != nil {
					return nil, err
				}
			}
			x = f
		case p.isName("is"):
			p.next()
			te := &testExpr{x: x}
			if p.isName("not") {
				p.next()
				te.negate = true
			}
			t := p.next()
			switch {
			case t.kind == tName:
				te.name = t.val
			case t.kind == tOp && t.val == "==":
				te.name = "eq"
			default:
				return nil, p.errf("want a test name after is")
			}
			if p.isOp("(") {
				p.next()
				args, _, err := p.parseArgs()
				if err != nil {
					return nil, err
				}
				te.args = args
			} else if t := p.peek(); t.kind == tString || t.kind == tInt || t.kind == tFloat || (t.kind == tName && (t.val == "none" || t.val == "true" || t.val == "false")) {
				a, err := p.parsePrimary()
				if err != nil {
					return nil, err
				}
				te.args = []expr{a}
			}
			x = te
		default:
			return x, nil
		}
	}
}

func (p *parser) parseSubscript(x expr) (expr, error) {
	var parts [3]expr
	n, colons := 0, 0
	for {
		if p.isOp("]") {
			p.next()
			break
		}
		if p.isOp(":") {
			p.next()
			colons++
			if colons > 2 {
				return nil, p.errf("too many colons in a slice")
			}
			n = colons
			continue
		}
		if parts[n] != nil {
			return nil, p.errf("want ] or :")
		}
		e, err := p.parseExpr()
		if err != nil {
			return nil, err
		}
		parts[n] = e
	}
	if colons == 0 {
		if parts[0] == nil {
			return nil, p.errf("empty subscript")
		}
		return &indexExpr{x: x, i: parts[0]}, nil
	}
	return &sliceExpr{x: x, lo: parts[0], hi: parts[1], step: parts[2]}, nil
}

// parseArgs reads call arguments after "(" up to ")".
func (p *parser) parseArgs() ([]expr, []kwarg, error) {
	var args []expr
	var kwargs []kwarg
	for !p.isOp(")") {
		if t := p.peek(); t.kind == tName && p.toks[p.pos+1].kind == tOp && p.toks[p.pos+1].val == "=" {
			p.next()
			p.next()
			x, err := p.parseExpr()
			if err != nil {
				return nil, nil, err
			}
			kwargs = append(kwargs, kwarg{t.val, x})
		} else {
			x, err := p.parseExpr()
			if err != nil {
				return nil, nil, err
			}
			args = append(args, x)
		}
		if p.isOp(",") {
			p.next()
			continue
		}
		if !p.isOp(")") {
			return nil, nil, p.errf("want , or ) in arguments, got %q", p.peek().val)
		}
	}
	p.next()
	return args, kwargs, nil
}

func (p *parser) parsePrimary() (expr, error) {
	if err := p.enter(); err != nil {
		return nil, err
	}
	defer func() { p.depth-- }()
	t := p.next()
	switch t.kind {
	case tString:
		s := t.val
		for p.peek().kind == tString { // adjacent literals concatenate
			s += p.next().val
		}
		return &literal{s}, nil
	case tInt:
		v, err := strconv.ParseInt(t.val, 10, 64)
		if err != nil {
			return nil, p.errf("integer %s: %v", t.val, err)
		}
		return &literal{v}, nil
	case tFloat:
		v, err := strconv.ParseFloat(t.val, 64)
		if err != nil {
			return nil, p.errf("number %s: %v", t.val, err)
		}
		return &literal{v}, nil
	case tName:
		switch t.val {
		case "true", "True":
			return &literal{true}, nil
		case "false", "False":
			return &literal{false}, nil
		case "none", "None":
			return &literal{nil}, nil
		}
		return &nameRef{t.val}, nil
	case tOp:
		switch t.val {
		case "(":
			x, err := p.parseExpr()
			if err != nil {
				return nil, err
			}
			if p.isOp(",") { // a tuple: a list will do
				items := []expr{x}
				for p.isOp(",") {
					p.next()
					if p.isOp(")") {
						break
					}
					y, err := p.parseExpr()
					if err != nil {
						return nil, err
					}
					items = append(items, y)
				}
				x = &listExpr{items}
			}
			return x, p.expectOp(")")
		case "[":
			l := &listExpr{}
			for !p.isOp("]") {
				x, err := p.parseExpr()
				if err != nil {
					return nil, err
				}
				l.items = append(l.items, x)
				if !p.isOp(",") {
					break
				}
				p.next()
			}
			return l, p.expectOp("]")
		case "{":
			d := &dictExpr{}
			for !p.isOp("}") {
				k, err := p.parseExpr()
				if err != nil {
					return nil, err
				}
				if err := p.expectOp(":"); err != nil {
					return nil, err
				}
				v, err := p.parseExpr()
				if err != nil {
					return nil, err
				}
				d.keys, d.vals = append(d.keys, k), append(d.vals, v)
				if !p.isOp(",") {
					break
				}
				p.next()
			}
			return d, p.expectOp("}")
		}
	}
	return nil, fmt.Errorf("%w: line %d: unexpected %q in an expression", ErrSyntax, t.line, t.val)
}
