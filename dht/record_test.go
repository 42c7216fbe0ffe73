package dht

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/ipfs/go-cid"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"
	mh "github.com/multiformats/go-multihash"
)

var testNow = time.Unix(1_800_000_000, 0)

func newKey(t testing.TB) (crypto.PrivKey, peer.ID) {
	t.Helper()
	k, _, err := crypto.GenerateEd25519Key(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	id, err := peer.IDFromPrivateKey(k)
	if err != nil {
		t.Fatal(err)
	}
	return k, id
}

// testCID is a CIDv1 raw sha2-256, as pipeline/model makes them.
func testCID(t testing.TB, s string) cid.Cid {
	t.Helper()
	sum := sha256.Sum256([]byte(s))
	h, err := mh.Encode(sum[:], mh.SHA2_256)
	if err != nil {
		t.Fatal(err)
	}
	return cid.NewCidV1(cid.Raw, h)
}

func testRecord(t testing.TB, id peer.ID, model cid.Cid, first, last uint32) Record {
	t.Helper()
	return Record{
		Peer:       id,
		Addrs:      []ma.Multiaddr{ma.StringCast("/ip4/127.0.0.1/tcp/4001"), ma.StringCast("/ip6/::1/udp/4001/quic-v1")},
		Models:     []ServedModel{{Model: model, Layers: 8, First: first, Last: last, Throughput: 4000, Activations: ActivationsF32 | ActivationsF16}},
		Tier:       3,
		Multiplier: 1000,
		FreeSlots:  4,
		Load:       250,
		Seq:        7,
		Expires:    testNow.Add(5 * time.Minute).Unix(),
	}
}

func signed(t testing.TB, k crypto.PrivKey, r Record) []byte {
	t.Helper()
	if err := r.Sign(k); err != nil {
		t.Fatal(err)
	}
	b, err := r.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func testValidator() Validator {
	return Validator{Now: func() time.Time { return testNow }, ClockSkew: DefaultClockSkew, MaxTTL: DefaultMaxTTL}
}

func TestRecordRoundTrip(t *testing.T) {
	k, id := newKey(t)
	r := testRecord(t, id, testCID(t, "m"), 0, 3)
	b := signed(t, k, r)
	got, err := UnmarshalRecord(b)
	if err != nil {
		t.Fatal(err)
	}
	if err := got.Verify(); err != nil {
		t.Fatal(err)
	}
	again, err := got.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(again, b) {
		t.Fatal("re-encoding differs")
	}
	if got.Peer != id || got.Seq != 7 || got.Load != 250 || len(got.Addrs) != 2 || !got.Addrs[1].Equal(r.Addrs[1]) ||
		got.Models[0] != r.Models[0] {
		t.Fatalf("decoded %+v, want %+v", got, r)
	}
	if _, err := testValidator().Open(b); err != nil {
		t.Fatal(err)
	}
}

func TestRecordRejects(t *testing.T) {
	k, id := newKey(t)
	other, _ := newKey(t)
	model := testCID(t, "m")
	good := testRecord(t, id, model, 0, 3)
	b := signed(t, k, good)

	tampered := bytes.Clone(b)
	tampered[len(tampered)-70] ^= 1 // inside the model entry

	forged := good
	forged.Load = 0
	forged.Signature = bytes.Clone(good.Signature)
	if err := forged.Sign(k); err != nil {
		t.Fatal(err)
	}
	forged.Load = 999 // signed with load 0, claims 999
	forgedBytes, err := forged.Marshal()
	if err != nil {
		t.Fatal(err)
	}

	// A signature without the domain prefix must not verify.
	undomained := good
	body, _ := undomained.body()
	undomained.Signature, _ = k.Sign(body)
	undomainedBytes, _ := undomained.Marshal()

	expired := good
	expired.Expires = testNow.Add(-time.Minute).Unix()
	expiredBytes := signed(t, k, expired)

	skewed := good
	skewed.Expires = testNow.Add(-10 * time.Second).Unix() // within the skew allowance
	skewedBytes := signed(t, k, skewed)

	immortal := good
	immortal.Expires = testNow.Add(24 * time.Hour).Unix()
	immortalBytes := signed(t, k, immortal)

	rsaKey, _, err := crypto.GenerateRSAKeyPair(2048, rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	rsaID, _ := peer.IDFromPrivateKey(rsaKey)
	rsaRec := good
	rsaRec.Peer = rsaID
	rsaRec.Signature = make([]byte, 64)
	rsaBytes, _ := rsaRec.Marshal()

	tests := []struct {
		name string
		b    []byte
		want error
	}{
		{"tampered", tampered, ErrBadSignature},
		{"forged field", forgedBytes, ErrBadSignature},
		{"no domain", undomainedBytes, ErrBadSignature},
		{"expired", expiredBytes, ErrExpired},
		{"expiry too far", immortalBytes, ErrExpiryTooFar},
		{"rsa peer", rsaBytes, ErrUnsupportedKey},
		{"truncated", b[:len(b)-1], ErrMalformed},
		{"trailing", append(bytes.Clone(b), 0), ErrMalformed},
		{"empty", nil, ErrMalformed},
		{"version", append([]byte{2}, b[1:]...), ErrMalformed},
		{"unknown flag", append([]byte{1, 2}, b[2:]...), ErrMalformed},
		{"oversized", make([]byte, MaxRecordSize+1), ErrTooLarge},
	}
	v := testValidator()
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := v.Open(tc.b); !errors.Is(err, tc.want) {
				t.Fatalf("Open: %v, want %v", err, tc.want)
			}
		})
	}
	if _, err := v.Open(skewedBytes); err != nil {
		t.Fatalf("record within clock skew: %v", err)
	}

	// Signing with another key than the record's peer.
	wrong := good
	if err := wrong.Sign(other); !errors.Is(err, ErrKeyMismatch) {
		t.Fatalf("Sign with a foreign key: %v", err)
	}
	// A valid record stored under another peer's key.
	_, otherID := newKey(t)
	if err := v.Validate(NodeKey(otherID), b); !errors.Is(err, ErrKeyMismatch) {
		t.Fatalf("Validate under another key: %v", err)
	}
	if err := v.Validate("/imece/node/notapeer", b); !errors.Is(err, ErrBadKey) {
		t.Fatalf("Validate bad key: %v", err)
	}
	if err := v.Validate(NodeKey(id), b); err != nil {
		t.Fatal(err)
	}
	unsigned := good
	unsigned.Signature = nil
	if _, err := unsigned.Marshal(); !errors.Is(err, ErrUnsigned) {
		t.Fatalf("Marshal unsigned: %v", err)
	}
}

func TestRecordBounds(t *testing.T) {
	k, id := newKey(t)
	model := testCID(t, "m")
	bad := map[string]func(r *Record){
		"too many addrs": func(r *Record) {
			for len(r.Addrs) <= MaxAddrs {
				r.Addrs = append(r.Addrs, r.Addrs[0])
			}
		},
		"too many models": func(r *Record) {
			for i := len(r.Models); i <= MaxModels; i++ {
				r.Models = append(r.Models, ServedModel{Model: testCID(t, fmt.Sprint(i)), Layers: 1, Last: 1})
			}
		},
		"duplicate model": func(r *Record) { r.Models = append(r.Models, r.Models[0]) },
		"empty range":     func(r *Record) { r.Models[0].First = r.Models[0].Last },
		"past the end":    func(r *Record) { r.Models[0].Last = r.Models[0].Layers + 1 },
		"load":            func(r *Record) { r.Load = 1001 },
		"p_grid":          func(r *Record) { r.PGrid = 1001 },
		"throughput":      func(r *Record) { r.Models[0].Throughput = MaxThroughput + 1 },
		"no expiry":       func(r *Record) { r.Expires = 0 },
		"cid v0": func(r *Record) {
			r.Models[0].Model = cid.NewCidV0(r.Models[0].Model.Hash())
		},
	}
	for name, f := range bad {
		t.Run(name, func(t *testing.T) {
			r := testRecord(t, id, model, 0, 3)
			r.Models = append([]ServedModel(nil), r.Models...)
			f(&r)
			if err := r.Sign(k); !errors.Is(err, ErrMalformed) && !errors.Is(err, ErrTooLarge) {
				t.Fatalf("Sign: %v", err)
			}
		})
	}

	// A record at every bound still fits MaxRecordSize.
	r := testRecord(t, id, model, 0, 3)
	long := ma.StringCast("/dns4/" + string(bytes.Repeat([]byte("a"), 200)) + "/tcp/1")
	for len(long.Bytes()) < MaxAddrLen-10 {
		long = long.Encapsulate(ma.StringCast("/tcp/1"))
	}
	r.Addrs = nil
	for range MaxAddrs {
		r.Addrs = append(r.Addrs, long)
	}
	r.Models = nil
	for i := range MaxModels {
		r.Models = append(r.Models, ServedModel{Model: testCID(t, fmt.Sprint(i)), Layers: MaxLayers, Last: MaxLayers, Throughput: MaxThroughput})
	}
	b := signed(t, k, r)
	if len(b) > MaxRecordSize {
		t.Fatalf("largest record is %d bytes", len(b))
	}
	if _, err := testValidator().Open(b); err != nil {
		t.Fatal(err)
	}
}

func TestSelectHighestSequence(t *testing.T) {
	k, id := newKey(t)
	model := testCID(t, "m")
	var values [][]byte
	for _, seq := range []uint64{3, 9, 5} {
		r := testRecord(t, id, model, 0, 3)
		r.Seq = seq
		values = append(values, signed(t, k, r))
	}
	v := testValidator()
	key := NodeKey(id)
	if i, err := v.Select(key, values); err != nil || i != 1 {
		t.Fatalf("Select = %d, %v; want 1", i, err)
	}
	// An invalid value is never selected, however high its sequence.
	bad := bytes.Clone(values[1])
	bad[5] ^= 0xff
	if i, err := v.Select(key, [][]byte{values[0], bad}); err != nil || i != 0 {
		t.Fatalf("Select with garbage = %d, %v; want 0", i, err)
	}
	// Equal sequences: the later expiry, then the smaller encoding, in any order.
	a, b := testRecord(t, id, model, 0, 3), testRecord(t, id, model, 0, 3)
	b.Expires++
	ab, bb := signed(t, k, a), signed(t, k, b)
	for _, vals := range [][][]byte{{ab, bb}, {bb, ab}} {
		if i, _ := v.Select(key, vals); !bytes.Equal(vals[i], bb) {
			t.Fatal("tie not broken by expiry")
		}
	}
	c := testRecord(t, id, model, 0, 3)
	c.Load = 1
	cb := signed(t, k, c)
	want := ab
	if bytes.Compare(cb, ab) < 0 {
		want = cb
	}
	for _, vals := range [][][]byte{{ab, cb}, {cb, ab}} {
		if i, _ := v.Select(key, vals); !bytes.Equal(vals[i], want) {
			t.Fatal("tie not broken by bytes")
		}
	}
	if _, err := v.Select(key, [][]byte{bad}); err == nil {
		t.Fatal("Select of garbage only succeeded")
	}
}

func FuzzUnmarshalRecord(f *testing.F) {
	k, id := newKey(f)
	r := testRecord(f, id, testCID(f, "m"), 2, 5)
	f.Add(signed(f, k, r))
	r.Withdrawn, r.Addrs, r.Models = true, nil, nil
	f.Add(signed(f, k, r))
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := UnmarshalRecord(b)
		if err != nil {
			return
		}
		// Whatever decodes is canonical: it re-encodes to the same bytes.
		again, err := r.Marshal()
		if err != nil {
			t.Fatalf("decoded record does not encode: %v", err)
		}
		if !bytes.Equal(again, b) {
			t.Fatalf("not canonical:\n%x\n%x", b, again)
		}
		_ = r.Verify()
	})
}
