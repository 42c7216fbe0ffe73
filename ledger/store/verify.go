package store

import (
	"bytes"
	"cmp"
	"context"
	"errors"
	"fmt"
	"runtime"
	"slices"
	"sync"

	"github.com/dgraph-io/badger/v4"

	"github.com/imece/imece/ledger"
)

// maxReported bounds how many bad chains a Report lists: past a few, the
// store is damaged wholesale and the first ones say enough.
const maxReported = 100

// verifyBatch is how many stored blocks Verify reads before checking their
// signatures in parallel.
const verifyBatch = 2048

// Report is the outcome of Verify.
type Report struct {
	// Chains and Blocks count what was walked, bad blocks included.
	Chains int
	Blocks uint64
	// FraudProofs counts the recorded forks, each re-checked.
	FraudProofs int
	// Disk is Badger's verdict on its table files' checksums. A damaged
	// table block hides its keys from the walk, so the blocks it held show
	// up in Bad as unreadable.
	Disk error
	// Bad holds the first bad block of each bad chain, and any bad fraud
	// proof, in owner order (at most 100); empty when the store is sound.
	Bad []*BlockError
}

// OK reports whether Verify found nothing wrong.
func (r *Report) OK() bool { return len(r.Bad) == 0 }

// Verify walks every chain from its first block and checks everything the
// store holds: each block decodes, is stored under its own owner and
// sequence, verifies, follows its predecessor without a gap and links to it,
// is found by its ID; each chain ends at its recorded head; each fraud proof
// holds two different validly signed blocks of one position and its owner is
// frozen. It names the first bad block of each bad chain in the Report, and
// also returns the first of them as the error (a *BlockError matching
// ErrCorrupt), so `if err != nil` is enough for a caller that only needs to
// know. Other errors are I/O or ctx's.
//
// Verify reads a consistent snapshot: writers go on while it runs.
// Signatures, the costly part, are checked on every CPU.
func (s *Store) Verify(ctx context.Context) (*Report, error) {
	if err := s.use(); err != nil {
		return nil, err
	}
	defer s.done()
	r := &Report{}
	disk := verifyTables(s.db)
	if disk != nil {
		r.Disk = fmt.Errorf("%w: %w", ErrCorrupt, disk)
	}
	err := s.db.View(func(txn *badger.Txn) error {
		w := walker{txn: txn, r: r, disk: disk}
		if err := w.loadHeads(); err != nil {
			return err
		}
		if err := w.walkBlocks(ctx); err != nil {
			return err
		}
		w.finishHeads()
		return w.checkFraud()
	})
	slices.SortStableFunc(r.Bad, func(a, b *BlockError) int {
		return cmp.Or(bytes.Compare(a.Owner[:], b.Owner[:]), cmp.Compare(a.Seq, b.Seq))
	})
	if err != nil {
		return r, err
	}
	if len(r.Bad) > 0 {
		return r, r.Bad[0]
	}
	return r, r.Disk
}

// VerifyDir opens the store in dir without the head checks of Open, runs
// Verify and closes it: what `imece ledger verify --data DIR` calls, so a
// store that Open would refuse still gets its first bad block named. Pass
// WithReadOnly to leave the directory untouched.
func VerifyDir(ctx context.Context, dir string, opts ...Option) (*Report, error) {
	opts = append(opts[:len(opts):len(opts)], func(c *config) error { c.skipHeadCheck = true; return nil })
	s, err := Open(dir, opts...)
	if err != nil {
		return nil, err
	}
	r, err := s.Verify(ctx)
	if cerr := s.Close(); err == nil && cerr != nil {
		return r, cerr
	}
	return r, err
}

// walker is one Verify pass over a snapshot.
type walker struct {
	txn   *badger.Txn
	r     *Report
	heads map[ledger.Key]Head
	disk  error

	// The chain being walked.
	owner   ledger.Key
	started bool
	next    uint64 // expected sequence
	prev    ledger.BlockID
	broken  bool // a bad block was reported: skip the rest of the chain
}

func (w *walker) bad(e *BlockError) {
	if len(w.r.Bad) < maxReported {
		w.r.Bad = append(w.r.Bad, e)
	}
}

func (w *walker) loadHeads() error {
	w.heads = make(map[ledger.Key]Head)
	it := w.txn.NewIterator(badger.IteratorOptions{PrefetchValues: true, PrefetchSize: 256, Prefix: []byte{tHead}})
	defer it.Close()
	for it.Rewind(); it.Valid(); it.Next() {
		var owner ledger.Key
		if len(it.Item().Key()) != 1+keyLen {
			w.bad(&BlockError{Err: fmt.Errorf("%w: head key %x", ErrCorrupt, it.Item().Key())})
			continue
		}
		copy(owner[:], it.Item().Key()[1:])
		v, err := it.Item().ValueCopy(nil)
		if err != nil {
			return err
		}
		h, err := decodeHead(v)
		if err != nil {
			w.bad(&BlockError{Owner: owner, Err: err})
			continue
		}
		w.heads[owner] = h
	}
	return nil
}

// stored is one block as read from Badger, then as checked by a worker.
type stored struct {
	owner  ledger.Key
	seq    uint64
	val    []byte
	keyErr error

	b   *ledger.Block
	id  ledger.BlockID
	err error // decoding or signature
}

func (w *walker) walkBlocks(ctx context.Context) error {
	it := w.txn.NewIterator(badger.IteratorOptions{PrefetchValues: true, PrefetchSize: 256, Prefix: []byte{tBlock}})
	defer it.Close()
	batch := make([]stored, 0, verifyBatch)
	for it.Rewind(); ; {
		batch = batch[:0]
		for ; it.Valid() && len(batch) < verifyBatch; it.Next() {
			var st stored
			st.owner, st.seq, st.keyErr = parseBlockKey(it.Item().Key())
			v, err := it.Item().ValueCopy(nil)
			if err != nil {
				return err
			}
			st.val = v
			batch = append(batch, st)
		}
		if len(batch) == 0 {
			break
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		checkSignatures(batch)
		for i := range batch {
			if err := w.follow(&batch[i]); err != nil {
				return err
			}
		}
	}
	if w.started {
		w.endChain()
	}
	return nil
}

// checkSignatures decodes and verifies a batch on every CPU.
func checkSignatures(batch []stored) {
	workers := runtime.GOMAXPROCS(0)
	var wg sync.WaitGroup
	per := (len(batch) + workers - 1) / workers
	for lo := 0; lo < len(batch); lo += per {
		part := batch[lo:min(lo+per, len(batch))]
		wg.Go(func() {
			for i := range part {
				st := &part[i]
				if st.keyErr != nil {
					continue
				}
				st.b, st.err = decodeStored(st.owner, st.seq, st.val)
				if st.err != nil {
					continue
				}
				st.id = st.b.ID()
				st.err = st.b.VerifySignature()
			}
		})
	}
	wg.Wait()
}

// follow applies the sequential checks to the next stored block.
func (w *walker) follow(st *stored) error {
	if st.keyErr != nil {
		w.bad(&BlockError{Err: st.keyErr})
		return nil
	}
	if !w.started || st.owner != w.owner {
		if w.started {
			w.endChain()
		}
		w.owner, w.started, w.next, w.prev, w.broken = st.owner, true, 1, ledger.BlockID{}, false
		w.r.Chains++
	}
	w.r.Blocks++
	if w.broken {
		return nil
	}
	fail := func(seq uint64, id ledger.BlockID, err error) {
		w.bad(&BlockError{Owner: st.owner, Seq: seq, ID: id, Err: err})
		w.broken = true
	}
	switch {
	case st.seq != w.next:
		fail(w.next, ledger.BlockID{}, w.missing(st.owner, w.next, fmt.Sprintf("next stored is %d", st.seq)))
		return nil
	case st.err != nil:
		fail(st.seq, st.id, st.err)
		return nil
	case st.b.Prev != w.prev:
		fail(st.seq, st.id, fmt.Errorf("%w: links to %s, block %d is %s", ErrCorrupt, st.b.Prev.CID(), st.seq-1, w.prev.CID()))
		return nil
	}
	ref, err := w.txn.Get(idKey(st.id))
	switch {
	case errors.Is(err, badger.ErrKeyNotFound):
		fail(st.seq, st.id, fmt.Errorf("%w: not in the ID index", ErrCorrupt))
		return nil
	case err != nil:
		return err
	}
	err = ref.Value(func(v []byte) error {
		o, q, err := parseBlockRef(v)
		if err == nil && (o != st.owner || q != st.seq) {
			err = fmt.Errorf("%w: ID index points to block %d of %s", ErrCorrupt, q, o)
		}
		return err
	})
	if err != nil {
		fail(st.seq, st.id, err)
		return nil
	}
	w.next, w.prev = st.seq+1, st.id
	return nil
}

// endChain checks the walked chain against its recorded head.
func (w *walker) endChain() {
	h, ok := w.heads[w.owner]
	delete(w.heads, w.owner)
	if w.broken {
		return
	}
	last := w.next - 1
	switch {
	case !ok:
		err := fmt.Errorf("%w: chain has no head", ErrCorrupt)
		if _, gerr := w.txn.Get(headKey(w.owner)); gerr != nil && !errors.Is(gerr, badger.ErrKeyNotFound) {
			err = fmt.Errorf("%w: head unreadable: %w", ErrCorrupt, gerr)
		}
		w.bad(&BlockError{Owner: w.owner, Seq: last, ID: w.prev, Err: err})
	case h.Seq > last:
		w.bad(&BlockError{Owner: w.owner, Seq: last + 1, Err: w.missing(w.owner, last+1, fmt.Sprintf("head is %d", h.Seq))})
	case h.Seq < last:
		w.bad(&BlockError{Owner: w.owner, Seq: h.Seq + 1, Err: fmt.Errorf("%w: stored past the head %d", ErrCorrupt, h.Seq)})
	case h.ID != w.prev:
		w.bad(&BlockError{Owner: w.owner, Seq: last, ID: w.prev, Err: fmt.Errorf("%w: head names %s", ErrCorrupt, h.ID.CID())})
	}
}

// missing explains a block the walk did not find. A scan silently skips a
// Badger table block whose checksum fails; reading the one key says so.
func (w *walker) missing(owner ledger.Key, seq uint64, why string) error {
	_, err := w.txn.Get(blockKey(owner, seq))
	switch {
	case err != nil && !errors.Is(err, badger.ErrKeyNotFound):
		return fmt.Errorf("%w: unreadable: %w", ErrCorrupt, err)
	case w.disk != nil:
		return fmt.Errorf("%w: unreadable, damaged on disk (%w)", ErrCorrupt, w.disk)
	}
	return fmt.Errorf("%w: missing (%s)", ErrCorrupt, why)
}

// finishHeads reports heads whose chains have no blocks at all.
func (w *walker) finishHeads() {
	for owner, h := range w.heads {
		w.bad(&BlockError{Owner: owner, Seq: 1, Err: w.missing(owner, 1, fmt.Sprintf("head is %d", h.Seq))})
	}
}

// checkFraud re-checks every recorded fork and that its owner is frozen.
func (w *walker) checkFraud() error {
	it := w.txn.NewIterator(badger.IteratorOptions{PrefetchValues: true, Prefix: []byte{tFraud}})
	defer it.Close()
	for it.Rewind(); it.Valid(); it.Next() {
		w.r.FraudProofs++
		k := it.Item().Key()
		var owner ledger.Key
		var seq uint64
		if len(k) == 1+blockRefLen {
			owner, seq, _ = parseBlockRef(k[1:])
		}
		v, err := it.Item().ValueCopy(nil)
		if err != nil {
			return err
		}
		p, err := decodeProof(v)
		if err == nil {
			err = checkProof(p, owner, seq)
		}
		if err == nil {
			if _, err = w.txn.Get(frozenKey(owner)); errors.Is(err, badger.ErrKeyNotFound) {
				err = fmt.Errorf("%w: fraud proof for an owner not frozen", ErrCorrupt)
			}
		}
		if err != nil {
			w.bad(&BlockError{Owner: owner, Seq: seq, Err: fmt.Errorf("fraud proof: %w", err)})
		}
	}
	return nil
}

func checkProof(p *FraudProof, owner ledger.Key, seq uint64) error {
	switch {
	case p.A.Owner != owner || p.B.Owner != owner || p.A.Seq != seq || p.B.Seq != seq:
		return fmt.Errorf("%w: blocks of another position", ErrCorrupt)
	case p.A.ID() == p.B.ID():
		return fmt.Errorf("%w: the same block twice", ErrCorrupt)
	}
	if err := p.A.VerifySignature(); err != nil {
		return err
	}
	return p.B.VerifySignature()
}
