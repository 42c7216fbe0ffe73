package chat

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"reflect"
	"sort"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Limits of one rendering: chat prompts are kilobytes, and a template that
// loops for ever or doubles a string in a loop must fail, not hang.
const (
	maxOutput = 4 << 20
	maxSteps  = 1 << 20
)

// ErrRaised wraps the message of a template's raise_exception: the
// conversation breaks a rule of the model (roles not alternating, say), which
// is the caller's error, not the template's.
var ErrRaised = errors.New("template refused the conversation")

// undefined is a name or attribute that does not exist. It renders as "".
type undefined struct{}

// namespace is the mutable object namespace() returns.
type namespace map[string]any

// method is a string or dict method bound to its receiver.
type method struct {
	recv any
	name string
}

type builtin func(args []any, kwargs map[string]any) (any, error)

type scope struct {
	vars   map[string]any
	parent *scope
}

func (s *scope) get(name string) (any, bool) {
	for ; s != nil; s = s.parent {
		if v, ok := s.vars[name]; ok {
			return v, true
		}
	}
	return nil, false
}

type evaluator struct {
	out   strings.Builder
	steps int
}

func (e *evaluator) step() error {
	e.steps++
	if e.steps > maxSteps {
		return fmt.Errorf("template ran more than %d steps", maxSteps)
	}
	return nil
}

func (e *evaluator) write(s string) error {
	if e.out.Len()+len(s) > maxOutput {
		return fmt.Errorf("template output exceeds %d bytes", maxOutput)
	}
	e.out.WriteString(s)
	return nil
}

func (e *evaluator) exec(body []node, sc *scope) error {
	for _, n := range body {
		if err := e.step(); err != nil {
			return err
		}
		switch n := n.(type) {
		case *textNode:
			if err := e.write(n.s); err != nil {
				return err
			}
		case *outputNode:
			v, err := e.eval(n.x, sc)
			if err != nil {
				return err
			}
			if err := e.write(toString(v)); err != nil {
				return err
			}
		case *ifNode:
			done := false
			for i, c := range n.conds {
				v, err := e.eval(c, sc)
				if err != nil {
					return err
				}
				if truthy(v) {
					if err := e.exec(n.bodies[i], sc); err != nil {
						return err
					}
					done = true
					break
				}
			}
			if !done {
				if err := e.exec(n.els, sc); err != nil {
					return err
				}
			}
		case *forNode:
			if err := e.execFor(n, sc); err != nil {
				return err
			}
		case *setNode:
			v, err := e.eval(n.x, sc)
			if err != nil {
				return err
			}
			if n.attr == "" {
				sc.vars[n.name] = v
				continue
			}
			obj, _ := sc.get(n.name)
			ns, ok := obj.(namespace)
			if !ok {
				return fmt.Errorf("set %s.%s: %s is not a namespace", n.name, n.attr, n.name)
			}
			ns[n.attr] = v
		}
	}
	return nil
}

func (e *evaluator) execFor(n *forNode, sc *scope) error {
	it, err := e.eval(n.iter, sc)
	if err != nil {
		return err
	}
	items, err := iterate(it)
	if err != nil {
		return err
	}
	bind := func(inner *scope, item any) error {
		if len(n.vars) == 1 {
			inner.vars[n.vars[0]] = item
			return nil
		}
		parts, ok := item.([]any)
		if !ok || len(parts) != len(n.vars) {
			return fmt.Errorf("cannot unpack %s into %d loop variables", typeName(item), len(n.vars))
		}
		for i, v := range n.vars {
			inner.vars[v] = parts[i]
		}
		return nil
	}
	if n.cond != nil { // the filter runs before loop.* is known
		var kept []any
		for _, item := range items {
			inner := &scope{vars: map[string]any{}, parent: sc}
			if err := bind(inner, item); err != nil {
				return err
			}
			v, err := e.eval(n.cond, inner)
			if err != nil {
				return err
			}
			if truthy(v) {
				kept = append(kept, item)
			}
		}
		items = kept
	}
	if len(items) == 0 {
		return e.exec(n.els, sc)
	}
	for i, item := range items {
		if err := e.step(); err != nil {
			return err
		}
		inner := &scope{vars: map[string]any{}, parent: sc}
		if err := bind(inner, item); err != nil {
			return err
		}
		loop := map[string]any{
			"index": int64(i + 1), "index0": int64(i), "revindex": int64(len(items) - i), "revindex0": int64(len(items) - i - 1),
			"first": i == 0, "last": i == len(items)-1, "length": int64(len(items)),
			"previtem": undefined{}, "nextitem": undefined{},
		}
		if i > 0 {
			loop["previtem"] = items[i-1]
		}
		if i+1 < len(items) {
			loop["nextitem"] = items[i+1]
		}
		inner.vars["loop"] = loop
		if err := e.exec(n.body, inner); err != nil {
			return err
		}
	}
	return nil
}

func iterate(v any) ([]any, error) {
	switch v := v.(type) {
	case []any:
		return v, nil
	case string:
		var out []any
		for _, r := range v {
			out = append(out, string(r))
		}
		return out, nil
	case map[string]any:
		return sortedKeys(v), nil
	case namespace:
		return sortedKeys(v), nil
	case undefined, nil:
		return nil, nil
	}
	return nil, fmt.Errorf("%s is not iterable", typeName(v))
}

func sortedKeys[M ~map[string]any](m M) []any {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	out := make([]any, len(keys))
	for i, k := range keys {
		out[i] = k
	}
	return out
}

func (e *evaluator) eval(x expr, sc *scope) (any, error) {
	if err := e.step(); err != nil {
		return nil, err
	}
	switch x := x.(type) {
	case *literal:
		return x.v, nil
	case *nameRef:
		if v, ok := sc.get(x.name); ok {
			return v, nil
		}
		if f := builtinFunc(x.name); f != nil {
			return f, nil
		}
		return undefined{}, nil
	case *attrExpr:
		v, err := e.eval(x.x, sc)
		if err != nil {
			return nil, err
		}
		return getAttr(v, x.name), nil
	case *indexExpr:
		v, err := e.eval(x.x, sc)
		if err != nil {
			return nil, err
		}
		i, err := e.eval(x.i, sc)
		if err != nil {
			return nil, err
		}
		return getItem(v, i)
	case *sliceExpr:
		return e.evalSlice(x, sc)
	case *callExpr:
		fn, err := e.eval(x.fn, sc)
		if err != nil {
			return nil, err
		}
		args, kwargs, err := e.evalArgs(x.args, x.kwargs, sc)
		if err != nil {
			return nil, err
		}
		return call(fn, args, kwargs)
	case *filterExpr:
		v, err := e.eval(x.x, sc)
		if err != nil {
			return nil, err
		}
		args, kwargs, err := e.evalArgs(x.args, x.kwargs, sc)
		if err != nil {
			return nil, err
		}
		return applyFilter(x.name, v, args, kwargs)
	case *testExpr:
		v, err := e.eval(x.x, sc)
		if err != nil {
			return nil, err
		}
		args, _, err := e.evalArgs(x.args, nil, sc)
		if err != nil {
			return nil, err
		}
		ok, err := applyTest(x.name, v, args)
		return ok != x.negate, err
	case *unaryExpr:
		v, err := e.eval(x.x, sc)
		if err != nil {
			return nil, err
		}
		switch x.op {
		case "not":
			return !truthy(v), nil
		case "-":
			return arith("-", int64(0), v)
		}
		return arith("+", int64(0), v)
	case *binaryExpr:
		l, err := e.eval(x.l, sc)
		if err != nil {
			return nil, err
		}
		switch x.op {
		case "and":
			if !truthy(l) {
				return l, nil
			}
			return e.eval(x.r, sc)
		case "or":
			if truthy(l) {
				return l, nil
			}
			return e.eval(x.r, sc)
		}
		r, err := e.eval(x.r, sc)
		if err != nil {
			return nil, err
		}
		return binary(x.op, l, r)
	case *condExpr:
		c, err := e.eval(x.cond, sc)
		if err != nil {
			return nil, err
		}
		if truthy(c) {
			return e.eval(x.then, sc)
		}
		return e.eval(x.els, sc)
	case *listExpr:
		out := make([]any, 0, len(x.items))
		for _, it := range x.items {
			v, err := e.eval(it, sc)
			if err != nil {
				return nil, err
			}
			out = append(out, v)
		}
		return out, nil
	case *dictExpr:
		out := make(map[string]any, len(x.keys))
		for i := range x.keys {
			k, err := e.eval(x.keys[i], sc)
			if err != nil {
				return nil, err
			}
			v, err := e.eval(x.vals[i], sc)
			if err != nil {
				return nil, err
			}
			out[toString(k)] = v
		}
		return out, nil
	}
	return nil, fmt.Errorf("unknown expression %T", x)
}

func (e *evaluator) evalArgs(xs []expr, kws []kwarg, sc *scope) ([]any, map[string]any, error) {
	args := make([]any, 0, len(xs))
	for _, x := range xs {
		v, err := e.eval(x, sc)
		if err != nil {
			return nil, nil, err
		}
		args = append(args, v)
	}
	kwargs := map[string]any{}
	for _, k := range kws {
		v, err := e.eval(k.x, sc)
		if err != nil {
			return nil, nil, err
		}
		kwargs[k.name] = v
	}
	return args, kwargs, nil
}

func (e *evaluator) evalSlice(x *sliceExpr, sc *scope) (any, error) {
	v, err := e.eval(x.x, sc)
	if err != nil {
		return nil, err
	}
	bound := func(b expr) (*int64, error) {
		if b == nil {
			return nil, nil
		}
		bv, err := e.eval(b, sc)
		if err != nil {
			return nil, err
		}
		if bv == nil {
			return nil, nil
		}
		i, ok := bv.(int64)
		if !ok {
			return nil, fmt.Errorf("slice index %s is not an integer", typeName(bv))
		}
		return &i, nil
	}
	lo, err := bound(x.lo)
	if err != nil {
		return nil, err
	}
	hi, err := bound(x.hi)
	if err != nil {
		return nil, err
	}
	st, err := bound(x.step)
	if err != nil {
		return nil, err
	}
	step := int64(1)
	if st != nil {
		step = *st
	}
	if step == 0 {
		return nil, errors.New("slice step cannot be zero")
	}
	var items []any
	str, isStr := v.(string)
	switch v := v.(type) {
	case []any:
		items = v
	case string:
		for _, r := range v {
			items = append(items, string(r))
		}
	default:
		return nil, fmt.Errorf("cannot slice %s", typeName(v))
	}
	n := int64(len(items))
	// Python's slice bounds.
	norm := func(p *int64, def int64) int64 {
		if p == nil {
			return def
		}
		i := *p
		if i < 0 {
			i += n
			if i < 0 {
				if step < 0 {
					return -1
				}
				return 0
			}
		}
		if i >= n {
			if step < 0 {
				return n - 1
			}
			return n
		}
		return i
	}
	var out []any
	if step > 0 {
		for i := norm(lo, 0); i < norm(hi, n); i += step {
			out = append(out, items[i])
		}
	} else {
		for i := norm(lo, n-1); i > norm(hi, -1); i += step {
			out = append(out, items[i])
		}
	}
	if isStr {
		var b strings.Builder
		for _, s := range out {
			b.WriteString(s.(string))
		}
		_ = str
		return b.String(), nil
	}
	if out == nil {
		out = []any{}
	}
	return out, nil
}

func getAttr(v any, name string) any {
	switch v := v.(type) {
	case map[string]any:
		if x, ok := v[name]; ok {
			return x
		}
		switch name {
		case "items", "keys", "values", "get":
			return method{v, name}
		}
	case namespace:
		if x, ok := v[name]; ok {
			return x
		}
	case string:
		return method{v, name}
	}
	return undefined{}
}

func getItem(v, i any) (any, error) {
	switch v := v.(type) {
	case map[string]any:
		if s, ok := i.(string); ok {
			if x, ok := v[s]; ok {
				return x, nil
			}
		}
		return undefined{}, nil
	case namespace:
		if s, ok := i.(string); ok {
			if x, ok := v[s]; ok {
				return x, nil
			}
		}
		return undefined{}, nil
	case []any, string:
		idx, ok := i.(int64)
		if !ok {
			if s, isStr := i.(string); isStr {
				return getAttr(v, s), nil
			}
			return nil, fmt.Errorf("index %s is not an integer", typeName(i))
		}
		var items []any
		if s, isStr := v.(string); isStr {
			for _, r := range s {
				items = append(items, string(r))
			}
		} else {
			items = v.([]any)
		}
		if idx < 0 {
			idx += int64(len(items))
		}
		if idx < 0 || idx >= int64(len(items)) {
			return undefined{}, nil
		}
		return items[idx], nil
	case undefined, nil:
		return undefined{}, nil
	}
	return nil, fmt.Errorf("cannot index %s", typeName(v))
}

func builtinFunc(name string) builtin {
	switch name {
	case "raise_exception":
		return func(args []any, _ map[string]any) (any, error) {
			msg := "raise_exception"
			if len(args) > 0 {
				msg = toString(args[0])
			}
			return nil, fmt.Errorf("%w: %s", ErrRaised, msg)
		}
	case "namespace":
		return func(args []any, kwargs map[string]any) (any, error) {
			ns := namespace{}
			for k, v := range kwargs {
				ns[k] = v
			}
			return ns, nil
		}
	case "range":
		return func(args []any, _ map[string]any) (any, error) {
			var b [3]int64
			b[2] = 1
			switch len(args) {
			case 1:
				n, ok := args[0].(int64)
				if !ok {
					return nil, errors.New("range wants integers")
				}
				b[1] = n
			case 2, 3:
				for i, a := range args {
					n, ok := a.(int64)
					if !ok {
						return nil, errors.New("range wants integers")
					}
					b[i] = n
				}
			default:
				return nil, errors.New("range wants 1 to 3 arguments")
			}
			if b[2] == 0 {
				return nil, errors.New("range step cannot be zero")
			}
			var out []any
			for i := b[0]; (b[2] > 0 && i < b[1]) || (b[2] < 0 && i > b[1]); i += b[2] {
				if len(out) >= maxSteps {
					return nil, fmt.Errorf("range longer than %d", maxSteps)
				}
				out = append(out, i)
			}
			return out, nil
		}
	}
	return nil
}

func call(fn any, args []any, kwargs map[string]any) (any, error) {
	switch f := fn.(type) {
	case builtin:
		return f(args, kwargs)
	case method:
		return callMethod(f, args)
	}
	return nil, fmt.Errorf("%s is not callable", typeName(fn))
}

func strArg(args []any, i int) (string, bool) {
	if i >= len(args) {
		return "", false
	}
	s, ok := args[i].(string)
	return s, ok
}

func callMethod(m method, args []any) (any, error) {
	if d, ok := m.recv.(map[string]any); ok {
		switch m.name {
		case "items":
			var out []any
			for _, k := range sortedKeys(d) {
				out = append(out, []any{k, d[k.(string)]})
			}
			return out, nil
		case "keys":
			return sortedKeys(d), nil
		case "values":
			var out []any
			for _, k := range sortedKeys(d) {
				out = append(out, d[k.(string)])
			}
			return out, nil
		case "get":
			k, _ := strArg(args, 0)
			if v, ok := d[k]; ok {
				return v, nil
			}
			if len(args) > 1 {
				return args[1], nil
			}
			return nil, nil
		}
	}
	s, ok := m.recv.(string)
	if !ok {
		return nil, fmt.Errorf("no method %s on %s", m.name, typeName(m.recv))
	}
	chars := func() string {
		if c, ok := strArg(args, 0); ok {
			return c
		}
		return " \t\r\n\v\f"
	}
	switch m.name {
	case "strip":
		return strings.Trim(s, chars()), nil
	case "lstrip":
		return strings.TrimLeft(s, chars()), nil
	case "rstrip":
		return strings.TrimRight(s, chars()), nil
	case "upper":
		return strings.ToUpper(s), nil
	case "lower":
		return strings.ToLower(s), nil
	case "title":
		return title(s), nil
	case "capitalize":
		return capitalize(s), nil
	case "startswith", "endswith":
		p, ok := strArg(args, 0)
		if !ok {
			return nil, fmt.Errorf("%s wants a string", m.name)
		}
		if m.name == "startswith" {
			return strings.HasPrefix(s, p), nil
		}
		return strings.HasSuffix(s, p), nil
	case "split":
		var parts []string
		if sep, ok := strArg(args, 0); ok && sep != "" {
			parts = strings.Split(s, sep)
		} else {
			parts = strings.Fields(s)
		}
		out := make([]any, len(parts))
		for i, p := range parts {
			out[i] = p
		}
		return out, nil
	case "replace":
		old, ok1 := strArg(args, 0)
		nw, ok2 := strArg(args, 1)
		if !ok1 || !ok2 {
			return nil, errors.New("replace wants two strings")
		}
		return replaceBounded(s, old, nw)
	}
	return nil, fmt.Errorf("%w: string method %s", ErrUnsupported, m.name)
}

func replaceBounded(s, old, nw string) (any, error) {
	if n := strings.Count(s, old); n > 0 && len(s)+n*(len(nw)-len(old)) > maxOutput {
		return nil, fmt.Errorf("replace result exceeds %d bytes", maxOutput)
	}
	return strings.ReplaceAll(s, old, nw), nil
}

func title(s string) string {
	prev := ' '
	return strings.Map(func(r rune) rune {
		defer func() { prev = r }()
		if unicode.IsLetter(prev) {
			return unicode.ToLower(r)
		}
		return unicode.ToUpper(r)
	}, s)
}

func capitalize(s string) string {
	r, n := utf8.DecodeRuneInString(s)
	if n == 0 {
		return s
	}
	return string(unicode.ToUpper(r)) + strings.ToLower(s[n:])
}

func applyFilter(name string, v any, args []any, kwargs map[string]any) (any, error) {
	switch name {
	case "trim":
		return strings.TrimSpace(toString(v)), nil
	case "upper":
		return strings.ToUpper(toString(v)), nil
	case "lower":
		return strings.ToLower(toString(v)), nil
	case "capitalize":
		return capitalize(toString(v)), nil
	case "title":
		return title(toString(v)), nil
	case "string":
		return toString(v), nil
	case "length", "count":
		switch v := v.(type) {
		case string:
			return int64(utf8.RuneCountInString(v)), nil
		case []any:
			return int64(len(v)), nil
		case map[string]any:
			return int64(len(v)), nil
		case namespace:
			return int64(len(v)), nil
		case undefined:
			return int64(0), nil
		}
		return nil, fmt.Errorf("%s has no length", typeName(v))
	case "default", "d":
		var def any = ""
		if len(args) > 0 {
			def = args[0]
		}
		boolean := len(args) > 1 && truthy(args[1])
		if b, ok := kwargs["boolean"]; ok {
			boolean = truthy(b)
		}
		if _, undef := v.(undefined); undef || (boolean && !truthy(v)) {
			return def, nil
		}
		return v, nil
	case "first", "last":
		items, err := iterate(v)
		if err != nil {
			return nil, err
		}
		if len(items) == 0 {
			return undefined{}, nil
		}
		if name == "first" {
			return items[0], nil
		}
		return items[len(items)-1], nil
	case "list":
		return iterate(v)
	case "reverse":
		if s, ok := v.(string); ok {
			r := []rune(s)
			for i, j := 0, len(r)-1; i < j; i, j = i+1, j-1 {
				r[i], r[j] = r[j], r[i]
			}
			return string(r), nil
		}
		items, err := iterate(v)
		if err != nil {
			return nil, err
		}
		out := make([]any, len(items))
		for i, it := range items {
			out[len(items)-1-i] = it
		}
		return out, nil
	case "join":
		items, err := iterate(v)
		if err != nil {
			return nil, err
		}
		sep, _ := strArg(args, 0)
		parts := make([]string, len(items))
		total := 0
		for i, it := range items {
			parts[i] = toString(it)
			total += len(parts[i]) + len(sep)
		}
		if total > maxOutput {
			return nil, fmt.Errorf("join result exceeds %d bytes", maxOutput)
		}
		return strings.Join(parts, sep), nil
	case "replace":
		old, ok1 := strArg(args, 0)
		nw, ok2 := strArg(args, 1)
		if !ok1 || !ok2 {
			return nil, errors.New("replace wants two strings")
		}
		return replaceBounded(toString(v), old, nw)
	case "int":
		switch v := v.(type) {
		case int64:
			return v, nil
		case float64:
			return int64(v), nil
		case bool:
			if v {
				return int64(1), nil
			}
			return int64(0), nil
		case string:
			if i, err := strconv.ParseInt(strings.TrimSpace(v), 10, 64); err == nil {
				return i, nil
			}
		}
		return int64(0), nil
	case "float":
		if f, ok := toFloat(v); ok {
			return f, nil
		}
		if s, ok := v.(string); ok {
			if f, err := strconv.ParseFloat(strings.TrimSpace(s), 64); err == nil {
				return f, nil
			}
		}
		return 0.0, nil
	case "abs":
		switch v := v.(type) {
		case int64:
			if v < 0 {
				return -v, nil
			}
			return v, nil
		case float64:
			return math.Abs(v), nil
		}
		return nil, fmt.Errorf("abs of %s", typeName(v))
	case "tojson":
		b, err := json.Marshal(jsonable(v))
		if err != nil {
			return nil, fmt.Errorf("tojson: %w", err)
		}
		return string(b), nil
	}
	return nil, fmt.Errorf("%w: filter %s", ErrUnsupported, name)
}

func jsonable(v any) any {
	switch v := v.(type) {
	case undefined:
		return nil
	case namespace:
		return map[string]any(v)
	case method, builtin:
		return nil
	}
	return v
}

func applyTest(name string, v any, args []any) (bool, error) {
	_, undef := v.(undefined)
	switch name {
	case "defined":
		return !undef, nil
	case "undefined":
		return undef, nil
	case "none":
		return v == nil, nil
	case "string":
		_, ok := v.(string)
		return ok, nil
	case "number":
		_, ok := toFloat(v)
		return ok, nil
	case "integer":
		_, ok := v.(int64)
		return ok, nil
	case "float":
		_, ok := v.(float64)
		return ok, nil
	case "boolean":
		_, ok := v.(bool)
		return ok, nil
	case "true":
		return v == true, nil
	case "false":
		return v == false, nil
	case "mapping":
		switch v.(type) {
		case map[string]any, namespace:
			return true, nil
		}
		return false, nil
	case "sequence", "iterable":
		switch v.(type) {
		case []any, string, map[string]any:
			return true, nil
		}
		return false, nil
	case "even", "odd":
		i, ok := v.(int64)
		if !ok {
			return false, fmt.Errorf("%s test of %s", name, typeName(v))
		}
		return (i%2 == 0) == (name == "even"), nil
	case "eq", "equalto", "sameas":
		if len(args) != 1 {
			return false, fmt.Errorf("%s test wants one argument", name)
		}
		return equal(v, args[0]), nil
	case "callable":
		switch v.(type) {
		case method, builtin:
			return true, nil
		}
		return false, nil
	}
	return false, fmt.Errorf("%w: test %s", ErrUnsupported, name)
}

func truthy(v any) bool {
	switch v := v.(type) {
	case nil, undefined:
		return false
	case bool:
		return v
	case int64:
		return v != 0
	case float64:
		return v != 0
	case string:
		return v != ""
	case []any:
		return len(v) > 0
	case map[string]any:
		return len(v) > 0
	}
	return true
}

func toFloat(v any) (float64, bool) {
	switch v := v.(type) {
	case int64:
		return float64(v), true
	case float64:
		return v, true
	case bool:
		if v {
			return 1, true
		}
		return 0, true
	}
	return 0, false
}

func equal(a, b any) bool {
	if fa, ok := toFloat(a); ok {
		if fb, ok := toFloat(b); ok {
			return fa == fb
		}
		return false
	}
	switch a.(type) {
	case undefined:
		_, ok := b.(undefined)
		return ok
	case method, builtin:
		return false
	}
	return reflect.DeepEqual(a, b)
}

func binary(op string, l, r any) (any, error) {
	switch op {
	case "==":
		return equal(l, r), nil
	case "!=":
		return !equal(l, r), nil
	case "<", ">", "<=", ">=":
		c, err := compare(l, r)
		if err != nil {
			return nil, err
		}
		switch op {
		case "<":
			return c < 0, nil
		case ">":
			return c > 0, nil
		case "<=":
			return c <= 0, nil
		}
		return c >= 0, nil
	case "in", "not in":
		in, err := contains(r, l)
		if err != nil {
			return nil, err
		}
		return in == (op == "in"), nil
	case "~":
		s := toString(l) + toString(r)
		if len(s) > maxOutput {
			return nil, fmt.Errorf("string exceeds %d bytes", maxOutput)
		}
		return s, nil
	}
	return arith(op, l, r)
}

func compare(l, r any) (int, error) {
	if fl, ok := toFloat(l); ok {
		if fr, ok := toFloat(r); ok {
			switch {
			case fl < fr:
				return -1, nil
			case fl > fr:
				return 1, nil
			}
			return 0, nil
		}
	}
	ls, ok1 := l.(string)
	rs, ok2 := r.(string)
	if ok1 && ok2 {
		return strings.Compare(ls, rs), nil
	}
	return 0, fmt.Errorf("cannot compare %s with %s", typeName(l), typeName(r))
}

func contains(container, item any) (bool, error) {
	switch c := container.(type) {
	case string:
		s, ok := item.(string)
		if !ok {
			return false, fmt.Errorf("'in <string>' needs a string, not %s", typeName(item))
		}
		return strings.Contains(c, s), nil
	case []any:
		for _, x := range c {
			if equal(x, item) {
				return true, nil
			}
		}
		return false, nil
	case map[string]any:
		s, ok := item.(string)
		_, in := c[s]
		return ok && in, nil
	case namespace:
		s, ok := item.(string)
		_, in := c[s]
		return ok && in, nil
	case undefined, nil:
		return false, nil
	}
	return false, fmt.Errorf("'in' on %s", typeName(container))
}

func arith(op string, l, r any) (any, error) {
	if op == "+" {
		if ls, ok := l.(string); ok {
			if rs, ok := r.(string); ok {
				if len(ls)+len(rs) > maxOutput {
					return nil, fmt.Errorf("string exceeds %d bytes", maxOutput)
				}
				return ls + rs, nil
			}
		}
		if ll, ok := l.([]any); ok {
			if rl, ok := r.([]any); ok {
				if len(ll)+len(rl) > maxSteps {
					return nil, fmt.Errorf("list longer than %d", maxSteps)
				}
				return append(append([]any{}, ll...), rl...), nil
			}
		}
	}
	if op == "*" {
		s, sok := l.(string)
		n, nok := r.(int64)
		if !sok {
			s, sok = r.(string)
			n, nok = l.(int64)
		}
		if sok && nok {
			if n <= 0 {
				return "", nil
			}
			if int64(len(s))*n > maxOutput || n > maxOutput {
				return nil, fmt.Errorf("string exceeds %d bytes", maxOutput)
			}
			return strings.Repeat(s, int(n)), nil
		}
	}
	li, lint := l.(int64)
	ri, rint := r.(int64)
	if lint && rint {
		switch op {
		case "+":
			return li + ri, nil
		case "-":
			return li - ri, nil
		case "*":
			return li * ri, nil
		case "//", "%":
			if ri == 0 {
				return nil, errors.New("integer division by zero")
			}
			q, m := li/ri, li%ri
			if m != 0 && (m < 0) != (ri < 0) { // Python floors
				q--
				m += ri
			}
			if op == "//" {
				return q, nil
			}
			return m, nil
		}
	}
	lf, ok1 := toFloat(l)
	rf, ok2 := toFloat(r)
	if !ok1 || !ok2 {
		return nil, fmt.Errorf("unsupported operands for %s: %s and %s", op, typeName(l), typeName(r))
	}
	switch op {
	case "+":
		return lf + rf, nil
	case "-":
		return lf - rf, nil
	case "*":
		return lf * rf, nil
	case "/":
		if rf == 0 {
			return nil, errors.New("division by zero")
		}
		return lf / rf, nil
	case "//":
		if rf == 0 {
			return nil, errors.New("division by zero")
		}
		return math.Floor(lf / rf), nil
	case "%":
		if rf == 0 {
			return nil, errors.New("modulo by zero")
		}
		m := math.Mod(lf, rf)
		if m != 0 && (m < 0) != (rf < 0) {
			m += rf
		}
		return m, nil
	}
	return nil, fmt.Errorf("unknown operator %s", op)
}

// toString renders a value as Jinja2 prints it.
func toString(v any) string {
	switch v := v.(type) {
	case nil:
		return "None"
	case undefined:
		return ""
	case string:
		return v
	case bool:
		if v {
			return "True"
		}
		return "False"
	case int64:
		return strconv.FormatInt(v, 10)
	case float64:
		if v == math.Trunc(v) && math.Abs(v) < 1e16 {
			return strconv.FormatFloat(v, 'f', 1, 64)
		}
		return strconv.FormatFloat(v, 'g', -1, 64)
	case []any:
		parts := make([]string, len(v))
		for i, x := range v {
			parts[i] = repr(x)
		}
		return "[" + strings.Join(parts, ", ") + "]"
	case map[string]any, namespace:
		var m map[string]any
		if ns, ok := v.(namespace); ok {
			m = ns
		} else {
			m = v.(map[string]any)
		}
		var parts []string
		for _, k := range sortedKeys(m) {
			parts = append(parts, repr(k)+": "+repr(m[k.(string)]))
		}
		return "{" + strings.Join(parts, ", ") + "}"
	}
	return ""
}

func repr(v any) string {
	if s, ok := v.(string); ok {
		return "'" + strings.ReplaceAll(strings.ReplaceAll(s, `\`, `\\`), "'", `\'`) + "'"
	}
	return toString(v)
}

func typeName(v any) string {
	switch v.(type) {
	case nil:
		return "none"
	case undefined:
		return "undefined"
	case string:
		return "string"
	case bool:
		return "boolean"
	case int64:
		return "integer"
	case float64:
		return "float"
	case []any:
		return "list"
	case map[string]any:
		return "dict"
	case namespace:
		return "namespace"
	case method, builtin:
		return "function"
	}
	return fmt.Sprintf("%T", v)
}
