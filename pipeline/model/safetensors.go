package model

import (
	"bytes"
	"cmp"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/imece/imece/kernels"
)

// Bounds on safetensors headers. The reference implementation caps the header at
// 100 MB; tensor counts share GGUF's bound.
const (
	maxSafetensorsHeader = 100 << 20
	maxShapeJSON         = 1 << 10 // bytes of one tensor's "shape" or "data_offsets"
)

// Safetensors is a parsed safetensors file: its free-form metadata and its tensors,
// whose Data slices point into the file's bytes.
type Safetensors struct {
	// Meta is the __metadata__ object (string to string), nil when absent.
	Meta map[string]string
	// Tensors are in file order (by data offset), with shapes reversed into GGML
	// order (innermost first) and names as the file spells them.
	Tensors []Tensor
	// DataOffset is where the data section starts: 8 + the header length.
	DataOffset int64
}

// safetensorsTypes maps the dtypes imece reads to kernels types.
var safetensorsTypes = map[string]kernels.DType{"F32": kernels.F32, "F16": kernels.F16, "BF16": kernels.BF16}

// ParseSafetensors decodes a safetensors file held in data (typically memory-mapped):
// an 8-byte little-endian header length, a JSON header naming each tensor's dtype,
// shape and data offsets, then the data. Like ParseGGUF it trusts nothing: the header
// is bounded, every tensor must lie inside the data section with exactly the bytes its
// dtype and shape need, and no two tensors may overlap. The returned tensors alias
// data.
func ParseSafetensors(data []byte) (*Safetensors, error) {
	if len(data) < 8 {
		return nil, fmt.Errorf("%w: safetensors file of %d bytes has no header length", ErrFormat, len(data))
	}
	n := binary.LittleEndian.Uint64(data)
	if n > maxSafetensorsHeader {
		return nil, fmt.Errorf("%w: safetensors header of %d bytes exceeds the limit of %d", ErrFormat, n, maxSafetensorsHeader)
	}
	if n > uint64(len(data)-8) {
		return nil, fmt.Errorf("%w: safetensors header of %d bytes extends past the end of the %d-byte file", ErrFormat, n, len(data))
	}
	header := data[8 : 8+n]
	if len(header) == 0 || header[0] != '{' {
		return nil, fmt.Errorf("%w: safetensors header does not start with '{'", ErrFormat)
	}
	if !utf8.Valid(header) {
		return nil, fmt.Errorf("%w: safetensors header is not valid UTF-8", ErrFormat)
	}
	st := &Safetensors{DataOffset: int64(8 + n)}
	body := data[8+n:]

	type entry struct {
		Dtype       string          `json:"dtype"`
		Shape       json.RawMessage `json:"shape"`
		DataOffsets json.RawMessage `json:"data_offsets"`
	}
	type span struct{ lo, hi int64 }
	var spans []span
	seen := make(map[string]bool)
	dec := json.NewDecoder(bytes.NewReader(header))
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%w: safetensors header: %s", ErrFormat, fmt.Sprintf(format, args...))
	}
	if _, err := dec.Token(); err != nil { // the '{' checked above
		return nil, bad("%v", err)
	}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return nil, bad("%v", err)
		}
		name, _ := tok.(string) // inside an object the decoder yields only string keys
		if seen[name] {
			return nil, bad("duplicate entry %q", name)
		}
		seen[name] = true
		if name == "__metadata__" {
			if err := dec.Decode(&st.Meta); err != nil {
				return nil, bad("__metadata__ is not an object of strings: %v", err)
			}
			continue
		}
		if len(st.Tensors) >= maxTensors {
			return nil, bad("more than %d tensors", maxTensors)
		}
		var e entry
		if err := dec.Decode(&e); err != nil {
			return nil, bad("tensor %q: %v", name, err)
		}
		t, lo, hi, err := safetensorsTensor(name, e.Dtype, e.Shape, e.DataOffsets, int64(len(body)))
		if err != nil {
			return nil, err
		}
		t.Data = body[lo:hi:hi]
		st.Tensors = append(st.Tensors, t)
		spans = append(spans, span{lo, hi})
	}
	if _, err := dec.Token(); err != nil { // the closing '}'
		return nil, bad("%v", err)
	}
	// Only whitespace may follow the object: writers pad the header to 8 bytes with
	// spaces, and anything else is a sign of a mangled file.
	rest := header[dec.InputOffset():]
	if len(bytes.Trim(rest, " \t\r\n")) != 0 {
		return nil, bad("%d bytes of trailing data after the JSON object", len(rest))
	}
	if err := checkOverlap(st.Tensors, func(i int) (int64, int64) { return spans[i].lo, spans[i].hi }); err != nil {
		return nil, err
	}
	order := make([]int, len(st.Tensors))
	for i := range order {
		order[i] = i
	}
	slices.SortFunc(order, func(a, b int) int { return cmp.Compare(spans[a].lo, spans[b].lo) })
	sorted := make([]Tensor, len(order))
	for i, j := range order {
		sorted[i] = st.Tensors[j]
	}
	st.Tensors = sorted
	return st, nil
}

// safetensorsTensor validates one header entry against a data section of avail
// bytes, returning the tensor (without Data) and its byte range.
func safetensorsTensor(name, dtype string, shapeJSON, offsetsJSON json.RawMessage, avail int64) (t Tensor, lo, hi int64, err error) {
	fail := func(format string, args ...any) (Tensor, int64, int64, error) {
		return Tensor{}, 0, 0, fmt.Errorf("%w: safetensors tensor %q: %s", ErrFormat, name, fmt.Sprintf(format, args...))
	}
	dt, ok := safetensorsTypes[dtype]
	if !ok {
		if dtype == "" {
			return fail("no dtype")
		}
		return fail("dtype %q is not supported (want F32, F16 or BF16)", dtype)
	}
	if len(shapeJSON) == 0 || len(offsetsJSON) == 0 {
		return fail("shape or data_offsets missing")
	}
	if len(shapeJSON) > maxShapeJSON || len(offsetsJSON) > maxShapeJSON {
		return fail("shape or data_offsets too long")
	}
	var shape, offsets []uint64
	if err := json.Unmarshal(shapeJSON, &shape); err != nil {
		return fail("shape %s is not a list of non-negative integers", shapeJSON)
	}
	if err := json.Unmarshal(offsetsJSON, &offsets); err != nil || len(offsets) != 2 {
		return fail("data_offsets %s is not a pair of non-negative integers", offsetsJSON)
	}
	if len(shape) > maxDims {
		return fail("%d dimensions (at most %d)", len(shape), maxDims)
	}
	// Safetensors lists the outermost dimension first; GGML the innermost.
	t = Tensor{Name: name, DType: dt, Shape: []int64{1}}
	if len(shape) > 0 {
		t.Shape = make([]int64, len(shape))
	}
	elems := int64(1)
	for i, d := range shape {
		if d == 0 {
			return fail("shape %v has an empty dimension", shape)
		}
		if d > math.MaxInt64/uint64(elems) {
			return fail("shape %v has too many elements", shape)
		}
		elems *= int64(d)
		t.Shape[len(shape)-1-i] = int64(d)
	}
	size, err := dt.RowBytes(elems)
	if err != nil {
		return fail("%v", err)
	}
	begin, end := offsets[0], offsets[1]
	if begin > end {
		return fail("data_offsets [%d, %d] are reversed", begin, end)
	}
	if end > uint64(avail) {
		return fail("data_offsets [%d, %d] extend past the end of the %d-byte data section", begin, end, avail)
	}
	if end-begin != uint64(size) {
		return fail("data_offsets [%d, %d] hold %d bytes, but %s %v needs %d", begin, end, end-begin, dtype, shape, size)
	}
	return t, int64(begin), int64(end), nil
}

// WriteSafetensors writes tensors as a safetensors file, in the order given, with
// meta as __metadata__ (omitted when empty). Shapes are GGML order, as everywhere in
// this package; the file gets them outermost first. It exists for tests and tools
// that need HuggingFace-style checkpoints; only F32, F16 and BF16 can be written.
func WriteSafetensors(w io.Writer, meta map[string]string, tensors ...Tensor) error {
	var hdr bytes.Buffer
	hdr.WriteByte('{')
	sep := func() {
		if hdr.Len() > 1 {
			hdr.WriteByte(',')
		}
	}
	if len(meta) > 0 {
		b, err := json.Marshal(meta)
		if err != nil {
			return fmt.Errorf("write safetensors: %w", err)
		}
		hdr.WriteString(`"__metadata__":`)
		hdr.Write(b)
	}
	var off int64
	for _, t := range tensors {
		dtype := strings.ToUpper(t.DType.String())
		if _, ok := safetensorsTypes[dtype]; !ok {
			return fmt.Errorf("write safetensors: tensor %q: type %s cannot be stored", t.Name, t.DType)
		}
		size, err := (TensorSource{Name: t.Name, Shape: t.Shape, DType: t.DType}).Size()
		if err != nil {
			return fmt.Errorf("write safetensors: %w", err)
		}
		if int64(len(t.Data)) != size {
			return fmt.Errorf("write safetensors: tensor %q has %d bytes, want %d", t.Name, len(t.Data), size)
		}
		shape := slices.Clone(t.Shape)
		slices.Reverse(shape)
		name, err := json.Marshal(t.Name)
		if err != nil {
			return fmt.Errorf("write safetensors: %w", err)
		}
		sep()
		fmt.Fprintf(&hdr, `%s:{"dtype":%q,"shape":%s,"data_offsets":[%d,%d]}`, name, dtype, jsonInts(shape), off, off+size)
		off += size
	}
	hdr.WriteByte('}')
	for hdr.Len()%8 != 0 {
		hdr.WriteByte(' ')
	}
	var n [8]byte
	binary.LittleEndian.PutUint64(n[:], uint64(hdr.Len()))
	if _, err := w.Write(n[:]); err != nil {
		return fmt.Errorf("write safetensors: %w", err)
	}
	if _, err := w.Write(hdr.Bytes()); err != nil {
		return fmt.Errorf("write safetensors: %w", err)
	}
	for _, t := range tensors {
		if _, err := w.Write(t.Data); err != nil {
			return fmt.Errorf("write safetensors: tensor %q: %w", t.Name, err)
		}
	}
	return nil
}

func jsonInts(v []int64) string {
	b := []byte{'['}
	for i, x := range v {
		if i > 0 {
			b = append(b, ',')
		}
		b = strconv.AppendInt(b, x, 10)
	}
	return string(append(b, ']'))
}
