package pipeline

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"math"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/imece/imece/pipeline/verify"
)

func testPrint(t testing.TB, dim int) verify.Fingerprint {
	p, err := verify.NewPrinter(7, dim)
	if err != nil {
		t.Fatal(err)
	}
	out, in := make([]float32, dim), make([]float32, dim)
	for i := range out {
		out[i], in[i] = float32(i%7)-3, float32(i%3)*0.5
	}
	fp, err := p.Hidden(out, in)
	if err != nil {
		t.Fatal(err)
	}
	return fp
}

func validAudits(t testing.TB) map[string]AuditMessage {
	fp := testPrint(t, 24)
	return map[string]AuditMessage{
		"evidence-request": &EvidenceRequest{Session: testSession, Hop: 2, From: 0, To: 17},
		"evidence-f32":     &Evidence{Session: testSession, Hop: 1, From: 3, DType: ActF32, Width: 2, Rows: []float32{1, -2, 3.5, 0}},
		"evidence-f16":     &Evidence{Session: testSession, Hop: 1, DType: ActF16, Width: 3, Rows: []float32{1, -2, 0.5}},
		"recompute-tokens": &RecomputeRequest{Session: testSession, Hop: 0, Seed: 99, Model: []byte("cid"), First: 0, Last: 2,
			DType: ActF32, Tokens: []int32{1, 5, 9}, Checks: []int{0, 2}},
		"recompute-tokens-witness": &RecomputeRequest{Session: testSession, Seed: 1, Model: []byte("cid"), First: 0, Last: 1,
			DType: ActF16, Tokens: []int32{1, 5}, Checks: []int{1}, Width: 2, Witness: []float32{0.25, -1}},
		"recompute-rows": &RecomputeRequest{Session: testSession, Hop: 3, Seed: 2, Model: []byte("cid"), First: 2, Last: 5,
			DType: ActF32, Inputs: []float32{1, 2, 3, 4}, Width: 2, Checks: []int{0, 1}},
		"recomputed-hidden":  &Recomputed{Hidden: []verify.Fingerprint{fp, fp}},
		"recomputed-witness": &Recomputed{Hidden: []verify.Fingerprint{fp}, Witness: []verify.Fingerprint{fp}},
		"recomputed-logits": &Recomputed{Logits: []verify.Logits{
			{IDs: []int32{4, 1}, Vals: []float32{2, 1}}, {IDs: []int32{0}, Vals: []float32{-1}}}},
		"error": &AuditError{Code: CodeNoSuchSession, Message: "gone"},
	}
}

// TestAuditRoundTrip: every message decodes to what was encoded.
func TestAuditRoundTrip(t *testing.T) {
	for name, m := range validAudits(t) {
		t.Run(name, func(t *testing.T) {
			b, err := AppendAudit(nil, m)
			if err != nil {
				t.Fatal(err)
			}
			got, err := ReadAudit(bytes.NewReader(b), len(b))
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, m) {
				t.Fatalf("got %+v, want %+v", got, m)
			}
			if _, err := ReadAudit(bytes.NewReader(b), len(b)-5); !errors.Is(err, ErrFrameTooLarge) {
				t.Fatalf("under a smaller limit: %v", err)
			}
		})
	}
}

// TestAuditRejects: malformed messages are refused on both sides.
func TestAuditRejects(t *testing.T) {
	bad := []AuditMessage{
		&EvidenceRequest{From: 3, To: 3},
		&Evidence{DType: ActF32, Width: 3, Rows: []float32{1, 2}},
		&RecomputeRequest{Model: []byte("c"), First: 1, Last: 2, Tokens: []int32{1}, Checks: []int{0}},
		&RecomputeRequest{Model: []byte("c"), First: 0, Last: 2, Tokens: []int32{1, 2}, Checks: []int{1, 1}},
		&RecomputeRequest{Model: []byte("c"), First: 1, Last: 2, Inputs: []float32{1, 2}, Width: 2, Checks: []int{0},
			Witness: []float32{1, 2}},
		&Recomputed{},
		&Recomputed{Logits: []verify.Logits{{IDs: []int32{1, 1}, Vals: []float32{1, 2}}}},
		&AuditError{},
	}
	for _, m := range bad {
		if _, err := AppendAudit(nil, m); !errors.Is(err, ErrBadFrame) {
			t.Errorf("%T %+v encoded: %v", m, m, err)
		}
	}
	good, _ := AppendAudit(nil, validAudits(t)["recompute-rows"])
	for name, mutate := range map[string]func(b []byte){
		"version":      func(b []byte) { b[4] = 9 },
		"type":         func(b []byte) { b[5] = 77 },
		"check order":  func(b []byte) { binary.LittleEndian.PutUint32(b[len(b)-5:], 0) },
		"witness flag": func(b []byte) { b[len(b)-1] = 1 },
	} {
		b := slices.Clone(good)
		mutate(b)
		if _, err := ReadAudit(bytes.NewReader(b), len(b)); !errors.Is(err, ErrBadFrame) {
			t.Errorf("%s: %v", name, err)
		}
	}
}

// TestAuditLengths: the bounds a reader uses hold the largest messages of a
// session.
func TestAuditLengths(t *testing.T) {
	const rows, width = 9, 5
	ev := &Evidence{DType: ActF32, Width: width, Rows: make([]float32, rows*width)}
	if b, _ := AppendAudit(nil, ev); len(b)-4 > EvidenceLen(rows, width, ActF32) {
		t.Errorf("evidence of %d bytes, bound %d", len(b)-4, EvidenceLen(rows, width, ActF32))
	}
	checks := make([]int, rows)
	for i := range checks {
		checks[i] = i
	}
	req := &RecomputeRequest{Model: bytes.Repeat([]byte{1}, MaxModelCIDBytes), First: 0, Last: 1, Tokens: make([]int32, rows),
		Checks: checks, Width: width, Witness: make([]float32, rows*width)}
	if b, err := AppendAudit(nil, req); err != nil || len(b)-4 > RecomputeRequestLen(rows, width, ActF32) {
		t.Errorf("request of %d bytes (%v), bound %d", len(b)-4, err, RecomputeRequestLen(rows, width, ActF32))
	}
	req = &RecomputeRequest{Model: []byte{1}, First: 1, Last: 2, Inputs: make([]float32, rows*width), Width: width, Checks: checks}
	if b, err := AppendAudit(nil, req); err != nil || len(b)-4 > RecomputeRequestLen(rows, width, ActF32) {
		t.Errorf("request of %d bytes (%v), bound %d", len(b)-4, err, RecomputeRequestLen(rows, width, ActF32))
	}
	fp := testPrint(t, 64)
	res := &Recomputed{Hidden: slices.Repeat([]verify.Fingerprint{fp}, rows), Witness: slices.Repeat([]verify.Fingerprint{fp}, rows)}
	if b, err := AppendAudit(nil, res); err != nil || len(b)-4 > RecomputedLen(rows, 64) {
		t.Errorf("answer of %d bytes (%v), bound %d", len(b)-4, err, RecomputedLen(rows, 64))
	}
	long := &AuditError{Code: CodeInternal, Message: strings.Repeat("é", MaxMessageBytes)}
	if b, err := AppendAudit(nil, long); err != nil || len(b)-4 > maxAuditErrorLen {
		t.Errorf("error of %d bytes (%v), bound %d", len(b)-4, err, maxAuditErrorLen)
	}
}

func FuzzAudit(f *testing.F) {
	for _, m := range validAudits(f) {
		b, err := AppendAudit(nil, m)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		const limit = 1 << 16
		got, err := ReadAudit(bytes.NewReader(in), limit)
		if err != nil {
			if got != nil {
				t.Fatalf("message %v with error %v", got, err)
			}
			for _, known := range []error{ErrBadFrame, ErrFrameTooLarge, io.EOF, io.ErrUnexpectedEOF} {
				if errors.Is(err, known) {
					return
				}
			}
			t.Fatalf("undocumented error %v", err)
		}
		enc, err := AppendAudit(nil, got)
		if err != nil {
			t.Fatalf("decoded %+v does not encode: %v", got, err)
		}
		if n := 4 + int(binary.LittleEndian.Uint32(in)); !bytes.Equal(enc, in[:n]) && !auditHasF16NaN(got) {
			t.Fatalf("re-encoding differs:\n in  %x\n out %x", in[:n], enc)
		}
		again, err := ReadAudit(bytes.NewReader(enc), limit)
		if err != nil {
			t.Fatalf("re-encoded message does not decode: %v", err)
		}
		if enc2, _ := AppendAudit(nil, again); !bytes.Equal(enc, enc2) {
			t.Fatalf("second round trip changed the message")
		}
	})
}

// auditHasF16NaN reports f16 values that are NaN, whose payloads do not survive
// decoding (see ActF16).
func auditHasF16NaN(m AuditMessage) bool {
	nan := func(v float32) bool { return math.IsNaN(float64(v)) }
	switch m := m.(type) {
	case *Evidence:
		return m.DType == ActF16 && slices.ContainsFunc(m.Rows, nan)
	case *RecomputeRequest:
		return m.DType == ActF16 && (slices.ContainsFunc(m.Inputs, nan) || slices.ContainsFunc(m.Witness, nan))
	}
	return false
}
