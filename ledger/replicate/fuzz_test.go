package replicate

import (
	"bufio"
	"bytes"
	"errors"
	"testing"

	"github.com/imece/imece/ledger"
)

// The decoders of everything a peer sends: none may panic or allocate from
// an unchecked count, and what they accept is canonical.

func FuzzDecodeRequest(f *testing.F) {
	owner := keyOf(testKey("owner"))
	for _, q := range []request{
		{kind: kindHeads, max: 10}, {kind: kindHeads, after: true, owner: owner, max: 1},
		{kind: kindRange, owner: owner, from: 1, max: 1000}, {kind: kindProof, owner: owner},
	} {
		f.Add(q.encode())
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		q, err := decodeRequest(data)
		if err != nil {
			if !errors.Is(err, ErrProtocol) {
				t.Fatalf("error does not wrap ErrProtocol: %v", err)
			}
			return
		}
		if !bytes.Equal(q.encode(), data) {
			t.Fatal("a decoded request does not encode to its bytes")
		}
		if r, err := readRequest(bytes.NewReader(data)); err != nil || r != q {
			t.Fatalf("readRequest disagrees with decodeRequest: %+v, %v", r, err)
		}
	})
}

func FuzzReadHeads(f *testing.F) {
	var buf bytes.Buffer
	w := bufio.NewWriter(&buf)
	writeHeads(w, sampleHeads(), true)
	f.Add(buf.Bytes())
	f.Add([]byte{byte(statusBusy)})
	f.Fuzz(func(t *testing.T, data []byte) {
		es, more, err := readHeads(bytes.NewReader(data), 16)
		if err != nil {
			return
		}
		if len(es) > 16 {
			t.Fatalf("%d heads over the limit", len(es))
		}
		var out bytes.Buffer
		ow := bufio.NewWriter(&out)
		writeHeads(ow, es, more)
		if !bytes.HasPrefix(data, out.Bytes()) {
			t.Fatal("accepted heads do not encode to the bytes read")
		}
	})
}

func FuzzReadBlocks(f *testing.F) {
	bs := chainOf(testKey("a"), nil, 3, 0)
	owner := bs[0].Owner
	var buf bytes.Buffer
	w := bufio.NewWriter(&buf)
	writeBlocks(w, encodedChain(bs))
	f.Add(buf.Bytes())
	f.Add([]byte{byte(statusOK), 0, 0, 0, 0})
	f.Fuzz(func(t *testing.T, data []byte) {
		got, err := readBlocks(bytes.NewReader(data), owner, 1, 8)
		if err != nil {
			return
		}
		for i, b := range got {
			if b.Owner != owner || b.Seq != uint64(i+1) {
				t.Fatalf("block %d is block %d of %s", i, b.Seq, b.Owner)
			}
		}
	})
}

func FuzzReadProof(f *testing.F) {
	forger := testKey("forger")
	p, _ := ledger.DetectFork(chainOf(forger, nil, 1, 0)[0], chainOf(forger, nil, 1, 1)[0])
	var buf bytes.Buffer
	w := bufio.NewWriter(&buf)
	writeProof(w, p)
	f.Add(buf.Bytes())
	f.Add([]byte{byte(statusNotFound)})
	f.Fuzz(func(t *testing.T, data []byte) {
		got, err := readProof(bytes.NewReader(data), p.Owner())
		if err != nil {
			return
		}
		if got.Owner() != p.Owner() {
			t.Fatal("proof of another owner accepted")
		}
	})
}
