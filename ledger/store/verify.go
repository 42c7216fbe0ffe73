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

// maxReported bounds how many problems a Report lists: past a few, the store
// is damaged wholesale and the first ones say enough.
const maxReported = 100

// walkBatch is how many stored blocks the walk reads and decodes at a time.
const walkBatch = 1024

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
	// proof or account, in owner order (at most 100); empty when the store is
	// sound.
	Bad []*BlockError
}

// OK reports whether Verify found nothing wrong.
func (r *Report) OK() bool { return len(r.Bad) == 0 && r.Disk == nil }

// Verify walks every chain from its first block and checks everything the
// store holds, replaying the chains into a fresh ledger State: each block
// decodes, is stored under its own owner and sequence, links to its
// predecessor without a gap, passes the chain rules (signature, time, body,
// no replayed window), is found by its ID; each chain ends at its recorded
// head; each fraud proof holds two different validly signed blocks of one
// position and its owner is frozen; each stored account is what the chains
// give (checked when the chains are sound). It names the first bad block of each bad chain in the Report, and
// returns the first problem as the error (a *BlockError matching ErrCorrupt),
// so `if err != nil` is enough for a caller that only needs to know. Other
// errors are I/O or ctx's.
//
// Verify reads a consistent snapshot: writers go on while it runs. Decoding
// runs beside the replay, which checks the signatures.
func (s *Store) Verify(ctx context.Context) (*Report, error) {
	if err := s.use(); err != nil {
		return nil, err
	}
	defer s.done()
	var disk error
	if err := verifyTables(s.db); err != nil {
		disk = fmt.Errorf("%w: %w", ErrCorrupt, err)
	}
	r, err := s.walk(ctx, ledger.NewState(s.cfg.genesis, s.cfg.costOf), true, nil)
	if r != nil {
		r.Disk = disk
	}
	switch {
	case err != nil:
		return r, err
	case len(r.Bad) > 0:
		return r, r.Bad[0]
	}
	return r, disk
}

// VerifyDir opens the store in dir without the checks of Open, runs Verify
// and closes it: what `imece ledger verify --data DIR` calls, so a store that
// Open would refuse still gets its first bad block named. Pass WithReadOnly
// to leave a cleanly closed directory untouched.
func VerifyDir(ctx context.Context, dir string, opts ...Option) (*Report, error) {
	opts = append(opts[:len(opts):len(opts)], func(c *config) error { c.verifyOnly = true; return nil })
	r, err := verifyOnce(ctx, dir, opts)
	damaged := r != nil && r.Disk != nil || r == nil && errors.Is(err, ErrCorrupt)
	if !damaged {
		return r, err
	}
	// Badger checks 4 KB table blocks, which hide every key they hold when
	// damaged (the store may even look empty). Read them again without that
	// check: the ledger's own checks then name the exact block whose bytes
	// changed.
	raw, rerr := verifyOnce(ctx, dir, append(opts, func(c *config) error { c.rawReads = true; return nil }))
	if raw == nil || rerr == nil {
		return r, err
	}
	if r != nil {
		raw.Disk = r.Disk
	} else {
		raw.Disk = err
	}
	return raw, rerr
}

func verifyOnce(ctx context.Context, dir string, opts []Option) (r *Report, err error) {
	s, err := Open(dir, opts...)
	if err != nil {
		return nil, err
	}
	defer func() {
		// A damaged table can make Badger panic on the raw read: report it.
		if p := recover(); p != nil {
			r, err = nil, fmt.Errorf("%w: badger: %v", ErrCorrupt, p)
		}
		if cerr := s.Close(); err == nil && cerr != nil {
			err = cerr
		}
	}()
	return s.Verify(ctx)
}

// walk replays every stored chain into st, checking what Verify lists, and
// reports the problems. Reading and decoding (one goroutine, decoding on
// every CPU) run ahead of the replay (this goroutine).
//
// progress, when not nil, hears every 100,000 blocks: Open logs them, since
// replaying a big store takes a while.
func (s *Store) walk(ctx context.Context, st *ledger.State, full bool, progress func(*Report)) (*Report, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	read := s.db.NewTransaction(false)
	defer read.Discard()
	probe := s.db.NewTransaction(false)
	defer probe.Discard()

	r := &Report{}
	w := &walker{txn: probe, st: st, r: r, db: s.db, progress: progress, lengths: make(map[ledger.Key]uint64)}
	if err := w.loadHeads(read); err != nil {
		return r, err
	}
	batches := make(chan []stored, 2)
	var readErr error
	var wg sync.WaitGroup
	wg.Go(func() {
		defer close(batches)
		readErr = readBlocks(ctx, read, batches)
	})
	for batch := range batches {
		for i := range batch {
			w.follow(&batch[i])
		}
	}
	wg.Wait()
	if readErr != nil {
		return r, readErr
	}
	if w.started {
		w.endChain()
	}
	w.finishHeads()
	if err := w.checkFraud(); err != nil {
		return r, err
	}
	if full {
		if err := w.checkIDIndex(); err != nil {
			return r, err
		}
	}
	// A broken chain's replay stops at its bad block, so its balance and
	// its counterparties' are not what the accounts say: compare them only
	// when every chain is sound, lest the report bury the real damage.
	if full && len(r.Bad) == 0 {
		if err := w.checkAccounts(); err != nil {
			return r, err
		}
	}
	slices.SortStableFunc(r.Bad, func(a, b *BlockError) int {
		return cmp.Or(bytes.Compare(a.Owner[:], b.Owner[:]), cmp.Compare(a.Seq, b.Seq))
	})
	return r, nil
}

// stored is one block as read from Badger, then as decoded.
type stored struct {
	owner  ledger.Key
	seq    uint64
	val    []byte
	keyErr error

	b     *ledger.Block
	id    ledger.BlockID
	err   error // decoding
	index error // the ID index entry
}

// readBlocks sends every stored block, decoded and checked against the ID
// index, in key order.
func readBlocks(ctx context.Context, txn *badger.Txn, out chan<- []stored) error {
	it := txn.NewIterator(badger.IteratorOptions{PrefetchValues: true, PrefetchSize: 256, Prefix: []byte{tBlock}})
	defer it.Close()
	it.Rewind()
	for {
		batch := make([]stored, 0, walkBatch)
		for ; it.Valid() && len(batch) < walkBatch; it.Next() {
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
			return nil
		}
		decodeAll(batch)
		for i := range batch {
			if batch[i].b != nil {
				batch[i].index = checkIndex(txn, &batch[i])
			}
		}
		select {
		case out <- batch:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// decodeAll decodes a batch on every CPU.
func decodeAll(batch []stored) {
	workers := runtime.GOMAXPROCS(0)
	per := (len(batch) + workers - 1) / workers
	var wg sync.WaitGroup
	for lo := 0; lo < len(batch); lo += per {
		part := batch[lo:min(lo+per, len(batch))]
		wg.Go(func() {
			for i := range part {
				st := &part[i]
				if st.keyErr != nil {
					continue
				}
				st.b, st.err = decodeStored(st.owner, st.seq, st.val)
				if st.err == nil {
					st.id = st.b.ID()
				}
				st.val = nil
			}
		})
	}
	wg.Wait()
}

// checkIndex checks that the ID index finds the block where it is.
func checkIndex(txn *badger.Txn, st *stored) error {
	item, err := txn.Get(idKey(st.id))
	if errors.Is(err, badger.ErrKeyNotFound) {
		return fmt.Errorf("%w: not in the ID index", ErrCorrupt)
	}
	if err != nil {
		return fmt.Errorf("%w: ID index unreadable: %w", ErrCorrupt, err)
	}
	return item.Value(func(v []byte) error {
		o, q, err := parseBlockRef(v)
		if err == nil && (o != st.owner || q != st.seq) {
			err = fmt.Errorf("%w: the ID index points to block %d of %x", ErrCorrupt, q, o[:])
		}
		return err
	})
}

// walker is the replay side of a walk.
type walker struct {
	txn   *badger.Txn // for probes; the reader has its own
	db    *badger.DB
	st    *ledger.State
	r     *Report
	heads map[ledger.Key]ledger.Head

	progress func(*Report)
	// lengths holds the length of each sound chain walked.
	lengths map[ledger.Key]uint64

	disk     error
	diskDone bool

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

// damage is the verdict on the table files, computed the first time a walk
// misses something.
func (w *walker) damage() error {
	if !w.diskDone {
		w.disk, w.diskDone = verifyTables(w.db), true
	}
	return w.disk
}

func (w *walker) loadHeads(txn *badger.Txn) error {
	w.heads = make(map[ledger.Key]ledger.Head)
	it := txn.NewIterator(badger.IteratorOptions{PrefetchValues: true, PrefetchSize: 256, Prefix: []byte{tHead}})
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

// follow checks the next stored block and replays it.
func (w *walker) follow(st *stored) {
	if st.keyErr != nil {
		w.bad(&BlockError{Err: st.keyErr})
		return
	}
	if !w.started || st.owner != w.owner {
		if w.started {
			w.endChain()
		}
		w.owner, w.started, w.next, w.prev, w.broken = st.owner, true, 1, ledger.BlockID{}, false
		w.r.Chains++
	}
	w.r.Blocks++
	if w.progress != nil && w.r.Blocks%100_000 == 0 {
		w.progress(w.r)
	}
	if w.broken {
		return
	}
	fail := func(seq uint64, id ledger.BlockID, err error) {
		w.bad(&BlockError{Owner: st.owner, Seq: seq, ID: id, Err: err})
		w.broken = true
	}
	switch {
	case st.seq != w.next:
		fail(w.next, ledger.BlockID{}, w.missing(st.owner, w.next, fmt.Sprintf("next stored is %d", st.seq)))
		return
	case st.err != nil:
		fail(st.seq, st.id, st.err)
		return
	case st.b.Prev != w.prev:
		fail(st.seq, st.id, fmt.Errorf("%w: %w: links to %s, block %d is %s", ErrCorrupt, ledger.ErrBrokenLink, st.b.Prev.CID(), st.seq-1, w.prev.CID()))
		return
	}
	// The replay first: a damaged block fails its signature, which says more
	// than the ID index not knowing its new ID.
	if _, err := w.st.Apply(st.b); err != nil {
		fail(st.seq, st.id, err)
		return
	}
	if st.index != nil {
		fail(st.seq, st.id, st.index)
		return
	}
	w.next, w.prev = st.seq+1, st.id
}

// endChain checks the walked chain against its recorded head.
func (w *walker) endChain() {
	h, ok := w.heads[w.owner]
	delete(w.heads, w.owner)
	if w.broken {
		return
	}
	last := w.next - 1
	w.lengths[w.owner] = last
	switch {
	case !ok:
		err := fmt.Errorf("%w: chain has no head", ErrCorrupt)
		if _, gerr := w.txn.Get(headKey(w.owner)); gerr != nil && !errors.Is(gerr, badger.ErrKeyNotFound) {
			err = fmt.Errorf("%w: head unreadable: %w", ErrCorrupt, gerr)
		} else if d := w.damage(); d != nil {
			err = fmt.Errorf("%w: head unreadable, damaged on disk (%w)", ErrCorrupt, d)
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
// Badger table block whose checksum fails; reading the one key, or checking
// the tables, says so.
func (w *walker) missing(owner ledger.Key, seq uint64, why string) error {
	_, err := w.txn.Get(blockKey(owner, seq))
	if err != nil && !errors.Is(err, badger.ErrKeyNotFound) {
		return fmt.Errorf("%w: unreadable: %w", ErrCorrupt, err)
	}
	if d := w.damage(); d != nil {
		return fmt.Errorf("%w: unreadable, damaged on disk (%w)", ErrCorrupt, d)
	}
	return fmt.Errorf("%w: missing (%s)", ErrCorrupt, why)
}

// checkIDIndex checks the ID index the other way: every entry names a block
// of a chain as long as the walk found it. A Badger table lost whole can take
// the end of a chain and its head with it, leaving a shorter chain that looks
// sound; its blocks' index entries, in other tables, give it away.
func (w *walker) checkIDIndex() error {
	// The first missing block of each chain: the index is in ID order.
	first := make(map[ledger.Key]*BlockError)
	it := w.txn.NewIterator(badger.IteratorOptions{PrefetchValues: true, PrefetchSize: 256, Prefix: []byte{tID}})
	defer it.Close()
	for it.Rewind(); it.Valid(); it.Next() {
		var id ledger.BlockID
		copy(id[:], it.Item().Key()[1:])
		var owner ledger.Key
		var seq uint64
		err := it.Item().Value(func(v []byte) (err error) {
			owner, seq, err = parseBlockRef(v)
			return err
		})
		if err != nil {
			w.bad(&BlockError{ID: id, Err: err})
			continue
		}
		if seq <= w.lengths[owner] || (first[owner] != nil && first[owner].Seq < seq) {
			continue
		}
		first[owner] = &BlockError{Owner: owner, Seq: seq, ID: id, Err: fmt.Errorf("%w: missing, the ID index names it", ErrCorrupt)}
	}
	for owner, e := range first {
		// Chains already reported are damaged enough.
		if !w.isBroken(owner) {
			w.bad(e)
		}
	}
	return nil
}

// isBroken reports whether owner's chain was already reported.
func (w *walker) isBroken(owner ledger.Key) bool {
	for _, e := range w.r.Bad {
		if e.Owner == owner {
			return true
		}
	}
	return false
}

// finishHeads reports heads whose chains have no blocks at all.
func (w *walker) finishHeads() {
	owners := make([]ledger.Key, 0, len(w.heads))
	for owner := range w.heads {
		owners = append(owners, owner)
	}
	slices.SortFunc(owners, func(a, b ledger.Key) int { return bytes.Compare(a[:], b[:]) })
	for _, owner := range owners {
		w.bad(&BlockError{Owner: owner, Seq: 1, Err: w.missing(owner, 1, fmt.Sprintf("head is %d", w.heads[owner].Seq))})
	}
}

// checkFraud re-checks every recorded fork, that its owner is frozen, and
// freezes the owner in the replayed State.
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
		p, err := ledger.DecodeFraudProof(v)
		if err == nil {
			err = p.Verify()
		}
		if err == nil && (p.Owner() != owner || p.A.Seq != seq) {
			err = fmt.Errorf("%w: a fork of block %d of %x", ErrCorrupt, p.A.Seq, p.Owner())
		}
		if err == nil {
			if _, err = w.txn.Get(frozenKey(owner)); errors.Is(err, badger.ErrKeyNotFound) {
				err = fmt.Errorf("%w: owner not frozen", ErrCorrupt)
			}
		}
		if err == nil {
			err = w.st.ApplyFraudProof(p)
		}
		if err != nil {
			w.bad(&BlockError{Owner: owner, Seq: seq, Err: fmt.Errorf("fraud proof: %w", err)})
		}
	}
	return nil
}

// checkAccounts compares the stored accounts with the replayed State: every
// chain has one, and each says what the chains give.
func (w *walker) checkAccounts() error {
	for _, m := range accountMismatches(w.txn, w.st) {
		w.bad(&BlockError{Owner: m.owner, Err: m.err})
	}
	return nil
}

type accountMismatch struct {
	owner ledger.Key
	err   error
}

func accountMismatches(txn *badger.Txn, st *ledger.State) []accountMismatch {
	var out []accountMismatch
	seen := make(map[ledger.Key]bool)
	it := txn.NewIterator(badger.IteratorOptions{PrefetchValues: true, PrefetchSize: 256, Prefix: []byte{tAccount}})
	defer it.Close()
	for it.Rewind(); it.Valid(); it.Next() {
		var owner ledger.Key
		if len(it.Item().Key()) != 1+keyLen {
			out = append(out, accountMismatch{err: fmt.Errorf("%w: account key %x", ErrCorrupt, it.Item().Key())})
			continue
		}
		copy(owner[:], it.Item().Key()[1:])
		seen[owner] = true
		var stored ledger.Balance
		err := it.Item().Value(func(v []byte) (err error) {
			stored, err = decodeAccount(v)
			return err
		})
		if err == nil {
			want := st.Balance(owner)
			want.Allowance = 0
			if stored != want {
				err = fmt.Errorf("%w: account %+v, the chains give %+v", ErrCorrupt, stored, want)
			}
		}
		if err != nil {
			out = append(out, accountMismatch{owner: owner, err: err})
		}
	}
	for owner := range st.Heads() {
		if !seen[owner] {
			out = append(out, accountMismatch{owner: owner, err: fmt.Errorf("%w: no account", ErrCorrupt)})
		}
	}
	return out
}
