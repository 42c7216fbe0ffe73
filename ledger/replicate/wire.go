package replicate

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"fmt"
	"io"

	"github.com/imece/imece/ledger"
)

// The messages of ProtocolID, one request and one response per stream, all
// integers little-endian like the ledger's encodings:
//
//	request  := version u8 (1) | kind u8 | body
//	  heads   (kind 1): flags u8 (bit 0: after cursor) | cursor [32] | limit u32
//	  range   (kind 2): owner [32] | from u64 | max u32
//	  proof   (kind 3): owner [32]
//	response := status u8 | body (only with status OK)
//	  heads: count u32 | more u8 | count × (owner [32] | seq u64 | head [32] | flags u8 (bit 0: frozen))
//	  range: count u32 | count × (len u32 | block)
//	  proof: len u32 | proof
//
// A heads response lists chains in ascending owner order, after the cursor
// when flag bit 0 is set; more says another page follows (ask again with the
// last owner as the cursor). It also lists owners the peer holds a fraud proof
// of, with seq 0 when it has none of their blocks. A range response holds
// consecutive blocks of owner from seq from on, at most max, MaxRangeBlocks
// and MaxRangeBytes; fewer (or none) when the chain ends sooner.

const wireVersion = 1

// requestKind says what a request asks for.
type requestKind uint8

const (
	kindHeads requestKind = 1
	kindRange requestKind = 2
	kindProof requestKind = 3
)

// Sizes of the encoded requests, by kind, header included.
const (
	headsRequestSize = 2 + 1 + 32 + 4
	rangeRequestSize = 2 + 32 + 8 + 4
	proofRequestSize = 2 + 32
	maxRequestSize   = rangeRequestSize
	headEntrySize    = 32 + 8 + 32 + 1
)

// status is the first byte of every response.
type status uint8

const (
	statusOK         status = 0
	statusNotFound   status = 1
	statusBadRequest status = 2
	statusBusy       status = 3
	statusFailed     status = 4
)

// request is one decoded request.
type request struct {
	kind requestKind
	// owner is the chain asked for (range, proof) or the heads cursor.
	owner ledger.Key
	// after: list heads after owner rather than from the first.
	after bool
	// from is the first sequence of a range.
	from uint64
	// max bounds the blocks of a range, or the heads of a page.
	max uint32
}

func requestSize(k requestKind) int {
	switch k {
	case kindHeads:
		return headsRequestSize
	case kindRange:
		return rangeRequestSize
	case kindProof:
		return proofRequestSize
	}
	return 0
}

func (q request) encode() []byte {
	out := make([]byte, 0, maxRequestSize)
	out = append(out, wireVersion, byte(q.kind))
	switch q.kind {
	case kindHeads:
		var flags byte
		if q.after {
			flags = 1
		}
		out = append(out, flags)
		out = append(out, q.owner[:]...)
		out = binary.LittleEndian.AppendUint32(out, q.max)
	case kindRange:
		out = append(out, q.owner[:]...)
		out = binary.LittleEndian.AppendUint64(out, q.from)
		out = binary.LittleEndian.AppendUint32(out, q.max)
	case kindProof:
		out = append(out, q.owner[:]...)
	}
	return out
}

// decodeRequest parses a whole request. It accepts only canonical requests: a
// known version and kind, the exact size, no unknown flag, a positive limit.
func decodeRequest(p []byte) (request, error) {
	var q request
	if len(p) < 2 {
		return q, fmt.Errorf("%w: request of %d bytes", ErrProtocol, len(p))
	}
	if p[0] != wireVersion {
		return q, fmt.Errorf("%w: request version %d", ErrProtocol, p[0])
	}
	q.kind = requestKind(p[1])
	n := requestSize(q.kind)
	if n == 0 {
		return q, fmt.Errorf("%w: request kind %d", ErrProtocol, p[1])
	}
	if len(p) != n {
		return q, fmt.Errorf("%w: request kind %d of %d bytes, want %d", ErrProtocol, q.kind, len(p), n)
	}
	body := p[2:]
	switch q.kind {
	case kindHeads:
		if body[0] > 1 {
			return q, fmt.Errorf("%w: heads flags %#x", ErrProtocol, body[0])
		}
		q.after = body[0] == 1
		copy(q.owner[:], body[1:])
		q.max = binary.LittleEndian.Uint32(body[33:])
		if q.max == 0 {
			return q, fmt.Errorf("%w: heads page of 0", ErrProtocol)
		}
	case kindRange:
		copy(q.owner[:], body)
		q.from = binary.LittleEndian.Uint64(body[32:])
		q.max = binary.LittleEndian.Uint32(body[40:])
		if q.from == 0 || q.max == 0 {
			return q, fmt.Errorf("%w: range from %d, max %d", ErrProtocol, q.from, q.max)
		}
	case kindProof:
		copy(q.owner[:], body)
	}
	return q, nil
}

// readRequest reads exactly one request from r: the header says how many
// bytes follow, so the requester need not close its side first.
func readRequest(r io.Reader) (request, error) {
	var buf [maxRequestSize]byte
	if _, err := io.ReadFull(r, buf[:2]); err != nil {
		return request{}, fmt.Errorf("read request: %w", err)
	}
	n := requestSize(requestKind(buf[1]))
	if buf[0] != wireVersion || n == 0 {
		return decodeRequest(buf[:2])
	}
	if _, err := io.ReadFull(r, buf[2:n]); err != nil {
		return request{}, fmt.Errorf("read request: %w", err)
	}
	return decodeRequest(buf[:n])
}

// readStatus reads a response's status and turns a refusal into its error.
func readStatus(r io.Reader) error {
	var b [1]byte
	if _, err := io.ReadFull(r, b[:]); err != nil {
		return fmt.Errorf("read status: %w", err)
	}
	switch status(b[0]) {
	case statusOK:
		return nil
	case statusNotFound:
		return ErrNotFound
	case statusBadRequest:
		return ErrRefused
	case statusBusy:
		return ErrBusy
	case statusFailed:
		return ErrPeerFailed
	}
	return fmt.Errorf("%w: status %d", ErrProtocol, b[0])
}

// readCount reads the status and the u32 that opens a range or proof
// response: a count of blocks, or a length.
func readCount(r io.Reader) (uint32, error) {
	if err := readStatus(r); err != nil {
		return 0, err
	}
	var n [4]byte
	if _, err := io.ReadFull(r, n[:]); err != nil {
		return 0, fmt.Errorf("read response: %w", err)
	}
	return binary.LittleEndian.Uint32(n[:]), nil
}

// headEntry is one chain in a heads response.
type headEntry struct {
	owner ledger.Key
	seq   uint64
	id    ledger.BlockID
	// frozen: the peer holds a fraud proof of owner.
	frozen bool
}

// writeHeads writes an OK heads response.
func writeHeads(w *bufio.Writer, entries []headEntry, more bool) error {
	w.WriteByte(byte(statusOK))
	var hdr [5]byte
	binary.LittleEndian.PutUint32(hdr[:], uint32(len(entries)))
	if more {
		hdr[4] = 1
	}
	w.Write(hdr[:])
	var e [headEntrySize]byte
	for _, h := range entries {
		copy(e[:], h.owner[:])
		binary.LittleEndian.PutUint64(e[32:], h.seq)
		copy(e[40:], h.id[:])
		e[72] = 0
		if h.frozen {
			e[72] = 1
		}
		w.Write(e[:])
	}
	return w.Flush()
}

// readHeads reads a heads response of at most limit entries: ascending
// owners, each with a head or a fraud proof, no unknown flag.
func readHeads(r io.Reader, limit int) (entries []headEntry, more bool, err error) {
	if err := readStatus(r); err != nil {
		return nil, false, err
	}
	var hdr [5]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		return nil, false, fmt.Errorf("read heads: %w", err)
	}
	n := binary.LittleEndian.Uint32(hdr[:])
	if n > uint32(min(limit, MaxHeadsPerPage)) {
		return nil, false, fmt.Errorf("%w: %d heads, asked for %d", ErrProtocol, n, limit)
	}
	if hdr[4] > 1 {
		return nil, false, fmt.Errorf("%w: heads more flag %d", ErrProtocol, hdr[4])
	}
	entries = make([]headEntry, 0, n)
	var e [headEntrySize]byte
	for i := range n {
		if _, err := io.ReadFull(r, e[:]); err != nil {
			return nil, false, fmt.Errorf("read heads: %w", err)
		}
		var h headEntry
		copy(h.owner[:], e[:32])
		h.seq = binary.LittleEndian.Uint64(e[32:])
		copy(h.id[:], e[40:72])
		switch {
		case e[72] > 1:
			return nil, false, fmt.Errorf("%w: head flags %#x", ErrProtocol, e[72])
		case i > 0 && bytes.Compare(h.owner[:], entries[i-1].owner[:]) <= 0:
			return nil, false, fmt.Errorf("%w: heads out of order", ErrProtocol)
		case (h.seq == 0) != h.id.IsZero():
			return nil, false, fmt.Errorf("%w: head %d of %s with ID %s", ErrProtocol, h.seq, h.owner, h.id)
		}
		h.frozen = e[72] == 1
		if h.seq == 0 && !h.frozen {
			return nil, false, fmt.Errorf("%w: empty chain of %s listed", ErrProtocol, h.owner)
		}
		entries = append(entries, h)
	}
	return entries, hdr[4] == 1, nil
}

// writeBlocks writes an OK range response of already encoded blocks.
func writeBlocks(w *bufio.Writer, encoded [][]byte) error {
	w.WriteByte(byte(statusOK))
	var n [4]byte
	binary.LittleEndian.PutUint32(n[:], uint32(len(encoded)))
	w.Write(n[:])
	for _, b := range encoded {
		binary.LittleEndian.PutUint32(n[:], uint32(len(b)))
		w.Write(n[:])
		w.Write(b)
	}
	return w.Flush()
}

// readBlocks reads a range response to a request for at most max blocks of
// owner from seq from on: consecutive blocks of that chain from there, within
// the protocol's bounds. The blocks are decoded, not yet checked against any
// chain: the store does that.
func readBlocks(r io.Reader, owner ledger.Key, from uint64, max int) ([]*ledger.Block, error) {
	n, err := readCount(r)
	if err != nil {
		return nil, err
	}
	if n > uint32(min(max, MaxRangeBlocks)) {
		return nil, fmt.Errorf("%w: %d blocks, asked for %d", ErrProtocol, n, max)
	}
	out := make([]*ledger.Block, 0, n)
	total := 0
	buf := make([]byte, ledger.MaxBlockSize)
	var hdr [4]byte
	for i := range n {
		if _, err := io.ReadFull(r, hdr[:]); err != nil {
			return nil, fmt.Errorf("read range: %w", err)
		}
		size := binary.LittleEndian.Uint32(hdr[:])
		if size > ledger.MaxBlockSize {
			return nil, fmt.Errorf("%w: block of %d bytes", ErrProtocol, size)
		}
		if total += int(size); total > MaxRangeBytes {
			return nil, fmt.Errorf("%w: range over %d bytes", ErrProtocol, MaxRangeBytes)
		}
		if _, err := io.ReadFull(r, buf[:size]); err != nil {
			return nil, fmt.Errorf("read range: %w", err)
		}
		b, err := ledger.DecodeBlock(buf[:size])
		if err != nil {
			return nil, fmt.Errorf("%w: %w", ErrProtocol, err)
		}
		if b.Owner != owner || b.Seq != from+uint64(i) {
			return nil, fmt.Errorf("%w: block %d of %s in a range of %s from %d", ErrProtocol, b.Seq, b.Owner, owner, from)
		}
		out = append(out, b)
	}
	return out, nil
}

// writeProof writes an OK proof response.
func writeProof(w *bufio.Writer, p *ledger.FraudProof) error {
	enc := p.Encode()
	w.WriteByte(byte(statusOK))
	var n [4]byte
	binary.LittleEndian.PutUint32(n[:], uint32(len(enc)))
	w.Write(n[:])
	w.Write(enc)
	return w.Flush()
}

// readProof reads a proof response to a request for owner's proof. The proof
// is decoded, not verified: the store verifies it before freezing anyone.
func readProof(r io.Reader, owner ledger.Key) (*ledger.FraudProof, error) {
	n, err := readCount(r)
	if err != nil {
		return nil, err
	}
	if int64(n) > int64(ledger.MaxFraudProofSize) {
		return nil, fmt.Errorf("%w: proof of %d bytes", ErrProtocol, n)
	}
	buf := make([]byte, n)
	if _, err := io.ReadFull(r, buf); err != nil {
		return nil, fmt.Errorf("read proof: %w", err)
	}
	p, err := ledger.DecodeFraudProof(buf)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrProtocol, err)
	}
	if p.Owner() != owner || p.B.Owner != owner {
		return nil, fmt.Errorf("%w: proof of %s for %s", ErrProtocol, p.Owner(), owner)
	}
	return p, nil
}

// writeStatus writes a response that is only a status.
func writeStatus(w *bufio.Writer, s status) error {
	w.WriteByte(byte(s))
	return w.Flush()
}
