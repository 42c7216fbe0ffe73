package replicate

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"testing"

	"github.com/imece/imece/ledger"
)

func TestRequestRoundTrip(t *testing.T) {
	owner := keyOf(testKey("owner"))
	for _, q := range []request{
		{kind: kindHeads, max: 10},
		{kind: kindHeads, after: true, owner: owner, max: MaxHeadsPerPage},
		{kind: kindRange, owner: owner, from: 7, max: 1000},
		{kind: kindProof, owner: owner},
	} {
		enc := q.encode()
		got, err := decodeRequest(enc)
		if err != nil || got != q {
			t.Errorf("decode(encode(%+v)) = %+v, %v", q, got, err)
		}
		// A request is read without the requester closing its side.
		got, err = readRequest(io.MultiReader(bytes.NewReader(enc), blockingReader{}))
		if err != nil || got != q {
			t.Errorf("readRequest(%+v) = %+v, %v", q, got, err)
		}
	}
}

// blockingReader fails the test's read if anything reads past the request.
type blockingReader struct{}

func (blockingReader) Read([]byte) (int, error) { return 0, errors.New("read past the request") }

func TestDecodeRequestRefuses(t *testing.T) {
	owner := keyOf(testKey("owner"))
	good := request{kind: kindRange, owner: owner, from: 1, max: 5}.encode()
	heads := request{kind: kindHeads, max: 5}.encode()
	for name, p := range map[string][]byte{
		"empty":          nil,
		"one byte":       {wireVersion},
		"version":        append([]byte{2}, good[1:]...),
		"kind":           {wireVersion, 9},
		"short":          good[:len(good)-1],
		"long":           append(bytes.Clone(good), 0),
		"heads flags":    append([]byte{wireVersion, byte(kindHeads), 2}, heads[3:]...),
		"heads limit 0":  request{kind: kindHeads}.encode(),
		"range from 0":   request{kind: kindRange, owner: owner, max: 5}.encode(),
		"range max 0":    request{kind: kindRange, owner: owner, from: 1}.encode(),
		"proof too long": append(request{kind: kindProof, owner: owner}.encode(), 1),
	} {
		if _, err := decodeRequest(p); !errors.Is(err, ErrProtocol) {
			t.Errorf("%s: err = %v, want ErrProtocol", name, err)
		}
	}
}

func encodeWith(t *testing.T, write func(*bufio.Writer) error) []byte {
	t.Helper()
	var buf bytes.Buffer
	if err := write(bufio.NewWriter(&buf)); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func TestStatuses(t *testing.T) {
	for s, want := range map[status]error{
		statusNotFound: ErrNotFound, statusBadRequest: ErrRefused, statusBusy: ErrBusy,
		statusFailed: ErrPeerFailed, 99: ErrProtocol,
	} {
		p := encodeWith(t, func(w *bufio.Writer) error { return writeStatus(w, s) })
		if _, _, err := readHeads(bytes.NewReader(p), 10); !errors.Is(err, want) {
			t.Errorf("status %d: err = %v, want %v", s, err, want)
		}
	}
}

func sampleHeads() []headEntry {
	var out []headEntry
	for i, name := range []string{"a", "b", "c"} {
		b := chainOf(testKey(name), nil, 1, 0)[0]
		out = append(out, headEntry{owner: b.Owner, seq: 1, id: b.ID(), frozen: i == 1})
	}
	// Fraud proof only: no chain.
	out = append(out, headEntry{owner: keyOf(testKey("d")), frozen: true})
	sortHeads(out)
	return out
}

func sortHeads(es []headEntry) {
	for i := range es {
		for j := i + 1; j < len(es); j++ {
			if bytes.Compare(es[j].owner[:], es[i].owner[:]) < 0 {
				es[i], es[j] = es[j], es[i]
			}
		}
	}
}

func TestHeadsRoundTrip(t *testing.T) {
	want := sampleHeads()
	p := encodeWith(t, func(w *bufio.Writer) error { return writeHeads(w, want, true) })
	got, more, err := readHeads(bytes.NewReader(p), 10)
	if err != nil || !more || len(got) != len(want) {
		t.Fatalf("readHeads = %d entries, more %v, %v", len(got), more, err)
	}
	for i := range got {
		if got[i] != want[i] {
			t.Errorf("entry %d = %+v, want %+v", i, got[i], want[i])
		}
	}
}

func TestReadHeadsRefuses(t *testing.T) {
	es := sampleHeads()
	enc := func(es []headEntry) []byte {
		return encodeWith(t, func(w *bufio.Writer) error { return writeHeads(w, es, false) })
	}
	good := enc(es)
	entry := func(i int) int { return 1 + 5 + i*headEntrySize }
	mutate := func(f func(p []byte)) []byte { p := bytes.Clone(good); f(p); return p }
	for name, p := range map[string][]byte{
		"over the limit": enc(es), // read with a limit of 2 below
		"out of order":   enc([]headEntry{es[1], es[0]}),
		"duplicate":      enc([]headEntry{es[0], es[0]}),
		"more flag":      mutate(func(p []byte) { p[5] = 2 }),
		"entry flags":    mutate(func(p []byte) { p[entry(0)+72] = 4 }),
		"seq without id": enc([]headEntry{{owner: es[0].owner, seq: 3}}),
		"id without seq": enc([]headEntry{{owner: es[0].owner, id: ledger.BlockID{1}, frozen: true}}),
		"empty chain":    enc([]headEntry{{owner: es[0].owner}}),
		"huge count":     mutate(func(p []byte) { binary.LittleEndian.PutUint32(p[1:], 1<<31) }),
	} {
		limit := 10
		if name == "over the limit" {
			limit = 2
		}
		if _, _, err := readHeads(bytes.NewReader(p), limit); !errors.Is(err, ErrProtocol) {
			t.Errorf("%s: err = %v, want ErrProtocol", name, err)
		}
	}
	if _, _, err := readHeads(bytes.NewReader(good[:len(good)-1]), 10); err == nil {
		t.Error("truncated heads accepted")
	}
}

func encodedChain(bs []*ledger.Block) [][]byte {
	out := make([][]byte, len(bs))
	for i, b := range bs {
		out[i] = b.Encode()
	}
	return out
}

func TestBlocksRoundTrip(t *testing.T) {
	bs := chainOf(testKey("a"), nil, 5, 0)
	p := encodeWith(t, func(w *bufio.Writer) error { return writeBlocks(w, encodedChain(bs[2:])) })
	got, err := readBlocks(bytes.NewReader(p), bs[0].Owner, 3, 10)
	if err != nil || len(got) != 3 {
		t.Fatalf("readBlocks = %d blocks, %v", len(got), err)
	}
	for i, b := range got {
		if b.ID() != bs[2+i].ID() {
			t.Errorf("block %d differs", i)
		}
	}
}

func TestReadBlocksRefuses(t *testing.T) {
	bs := chainOf(testKey("a"), nil, 3, 0)
	owner := bs[0].Owner
	enc := func(blocks [][]byte) []byte {
		return encodeWith(t, func(w *bufio.Writer) error { return writeBlocks(w, blocks) })
	}
	other := chainOf(testKey("b"), nil, 1, 0)
	huge := enc(encodedChain(bs))
	binary.LittleEndian.PutUint32(huge[5:], ledger.MaxBlockSize+1)
	count := enc(encodedChain(bs))
	binary.LittleEndian.PutUint32(count[1:], MaxRangeBlocks+1)
	for name, c := range map[string]struct {
		p    []byte
		from uint64
		max  int
	}{
		"more than asked":  {enc(encodedChain(bs)), 1, 2},
		"over the maximum": {count, 1, 1 << 20},
		"another chain":    {enc(encodedChain(other)), 1, 3},
		"not from":         {enc(encodedChain(bs[1:])), 1, 3},
		"not consecutive":  {enc(encodedChain([]*ledger.Block{bs[0], bs[2]})), 1, 3},
		"oversized block":  {huge, 1, 3},
		"garbage block":    {enc([][]byte{[]byte("not a block")}), 1, 3},
	} {
		if _, err := readBlocks(bytes.NewReader(c.p), owner, c.from, c.max); !errors.Is(err, ErrProtocol) {
			t.Errorf("%s: err = %v, want ErrProtocol", name, err)
		}
	}
	good := enc(encodedChain(bs))
	if _, err := readBlocks(bytes.NewReader(good[:len(good)-1]), owner, 1, 3); err == nil {
		t.Error("truncated range accepted")
	}
}

func TestProofRoundTripAndRefusals(t *testing.T) {
	forger := testKey("forger")
	p, ok := ledger.DetectFork(chainOf(forger, nil, 1, 0)[0], chainOf(forger, nil, 1, 1)[0])
	if !ok {
		t.Fatal("not a fork")
	}
	enc := encodeWith(t, func(w *bufio.Writer) error { return writeProof(w, p) })
	got, err := readProof(bytes.NewReader(enc), p.Owner())
	if err != nil || got.A.ID() != p.A.ID() || got.B.ID() != p.B.ID() {
		t.Fatalf("readProof = %v, %v", got, err)
	}
	if _, err := readProof(bytes.NewReader(enc), keyOf(testKey("someone else"))); !errors.Is(err, ErrProtocol) {
		t.Errorf("proof of another owner: %v", err)
	}
	huge := bytes.Clone(enc)
	binary.LittleEndian.PutUint32(huge[1:], 1<<30)
	if _, err := readProof(bytes.NewReader(huge), p.Owner()); !errors.Is(err, ErrProtocol) {
		t.Errorf("oversized proof: %v", err)
	}
	garbage := append([]byte{0}, binary.LittleEndian.AppendUint32(nil, 5)...)
	if _, err := readProof(bytes.NewReader(append(garbage, "hello"...)), p.Owner()); !errors.Is(err, ErrProtocol) {
		t.Errorf("garbage proof: %v", err)
	}
}
