package store

import (
	"context"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/dgraph-io/badger/v4"
	"github.com/dgraph-io/badger/v4/options"

	"github.com/imece/imece/ledger"
)

// Errors of the store itself. Chain-rule violations (gaps, broken links,
// forks, bad signatures, replays) are the ledger's own errors, wrapped.
var (
	// ErrNotFound: the store has no such block or head.
	ErrNotFound = errors.New("store: not found")
	// ErrCorrupt: what is stored is not what was written: a block that does not
	// decode, verify or link, an index or account that disagrees with the
	// chains, a malformed key or value, a damaged file. A BlockError says
	// which block.
	ErrCorrupt = errors.New("store: corrupt")
	// ErrVersion: the directory holds a store of another format (or something
	// that is not a store at all).
	ErrVersion = errors.New("store: unsupported store version")
	// ErrClosed: the store was closed.
	ErrClosed = errors.New("store: closed")
	// ErrReadOnly: the store was opened WithReadOnly.
	ErrReadOnly = errors.New("store: read-only")
	// ErrFailed: a write failed after the ledger state had taken the block, so
	// memory and disk may disagree; the store refuses writes until reopened.
	ErrFailed = errors.New("store: failed, reopen it")
)

// BlockError names one bad stored block: which chain, which position, which
// block (zero ID when the bytes do not even decode) and what is wrong with it.
// Seq is 0 for what belongs to a chain but no block (its account). It matches
// ErrCorrupt and its cause with errors.Is.
type BlockError struct {
	Owner ledger.Key
	Seq   uint64
	ID    ledger.BlockID
	Err   error
}

// Error names the block in full (hex owner, CID), for an operator to find it.
func (e *BlockError) Error() string {
	var b strings.Builder
	if e.Seq == 0 {
		fmt.Fprintf(&b, "store: chain %s", hex.EncodeToString(e.Owner[:]))
	} else {
		fmt.Fprintf(&b, "store: block %d of %s", e.Seq, hex.EncodeToString(e.Owner[:]))
	}
	if !e.ID.IsZero() {
		fmt.Fprintf(&b, " (%s)", e.ID.CID())
	}
	fmt.Fprintf(&b, ": %v", e.Err)
	return b.String()
}

// Unwrap lets errors.Is find both ErrCorrupt and the cause.
func (e *BlockError) Unwrap() []error { return []error{ErrCorrupt, e.Err} }

// Store is the durable, verified home of every chain a node knows. It is safe
// for concurrent use: reads run in parallel, writes one at a time.
type Store struct {
	dir string
	db  *badger.DB
	cfg config
	log *slog.Logger

	// life guards db against Close: every operation holds it for reading.
	life   sync.RWMutex
	closed bool

	// mu serializes writes and guards state and failed. A block is checked
	// by the State and committed under it, so the State and the disk take
	// blocks in the same order.
	mu     sync.Mutex
	state  *ledger.State
	failed error
}

// Open opens (creating if needed) the store in dir and checks everything it
// holds before handing it out: the format version, then every chain from its
// first block, replayed into the ledger State that answers Balance (each
// block decodes, is stored under its own position, verifies, links, follows
// the chain rules, is found by its ID; each chain ends at its head; each
// fraud proof holds; each stored account matches what the chains give). A
// store that fails is refused with a BlockError naming the owner and sequence
// of the first bad block. The cost is one signature check per block (about a
// minute per million blocks on two cores).
func Open(dir string, opts ...Option) (*Store, error) {
	s, err := open(dir, opts...)
	if err != nil {
		return nil, err
	}
	if s.cfg.verifyOnly {
		s.failed = errors.New("opened for verification only")
		return s, nil
	}
	start := time.Now()
	r, err := s.walk(context.Background(), s.state, false, func(r *Report) {
		s.log.Info("store replaying", "dir", dir, "chains", r.Chains, "blocks", r.Blocks, "elapsed", time.Since(start))
	})
	if err == nil && len(r.Bad) > 0 {
		err = r.Bad[0]
	}
	if err == nil {
		err = s.repairAccounts()
	}
	if err != nil {
		s.db.Close()
		return nil, fmt.Errorf("store: open %s: %w", dir, err)
	}
	s.log.Info("store opened", "dir", dir, "chains", r.Chains, "blocks", r.Blocks, "took", time.Since(start))
	return s, nil
}

// repairAccounts rewrites the stored accounts that disagree with the State
// just rebuilt from the chains. Accounts are derived: the chains are the truth.
// They disagree after a crash of a node that learnt a model's cost and did not
// Revalidate (its replay now settles receipts the accounts still show
// pending), or when an account value was damaged; Verify reports the
// disagreement, Open mends it.
func (s *Store) repairAccounts() error {
	var bad []accountMismatch
	if err := s.db.View(func(txn *badger.Txn) error {
		bad = accountMismatches(txn, s.state)
		return nil
	}); err != nil {
		return err
	}
	if len(bad) == 0 {
		return nil
	}
	for _, m := range bad {
		s.log.Warn("store account rewritten from the chains", "owner", m.owner, "err", m.err)
	}
	if s.cfg.readOnly {
		return nil
	}
	return s.db.Update(func(txn *badger.Txn) error {
		for _, m := range bad {
			if err := s.writeAccount(txn, m.owner); err != nil {
				return err
			}
		}
		return nil
	})
}

// open opens Badger and checks the version.
func open(dir string, opts ...Option) (_ *Store, err error) {
	cfg := defaultConfig()
	for _, o := range opts {
		if err := o(&cfg); err != nil {
			return nil, err
		}
	}
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	bo := badger.DefaultOptions(dir).
		WithSyncWrites(cfg.syncWrites).
		WithReadOnly(cfg.readOnly).
		WithLogger(badgerLogger{cfg.logger}).
		WithMetricsEnabled(false).
		// Writes are serialized by the store (mu): Badger need not track
		// reads to detect conflicts.
		WithDetectConflicts(false).
		WithNumCompactors(2).
		WithNumGoroutines(2).
		WithMemTableSize(cfg.memTableSize).
		WithNumMemtables(3).
		WithBlockCacheSize(cfg.cacheSize).
		WithValueLogFileSize(64 << 20).
		// Blocks are mostly hashes and signatures: compression buys little.
		WithCompression(options.None).
		// A flipped bit on disk must surface as an error, not as a block. Per
		// block rather than per table: a whole-table check at open would refuse
		// the store without saying which blocks are damaged, where reading
		// them names each one.
		WithChecksumVerificationMode(options.OnBlockRead)
	if cfg.rawReads {
		bo = bo.WithChecksumVerificationMode(options.NoVerification)
	}
	db, err := openBadger(bo)
	if err != nil {
		return nil, fmt.Errorf("store: open %s: %w", dir, err)
	}
	s := &Store{dir: dir, db: db, cfg: cfg, log: cfg.logger, state: ledger.NewState(cfg.genesis, cfg.costOf)}
	if err := s.checkVersion(); err != nil {
		db.Close()
		return nil, err
	}
	return s, nil
}

// openBadger turns a panic inside Badger (it has a few on corrupt files) into
// an error: a damaged store must be reported, not crash the node.
func openBadger(bo badger.Options) (db *badger.DB, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("%w: badger: %v", ErrCorrupt, r)
		}
	}()
	return badger.Open(bo)
}

// verifyTables checks the checksum of every block of every Badger table.
// Badger v4.9.6 panics (a nil block) instead of returning the error when a
// block fails in the checksum mode the store uses, so the panic is the
// verdict.
func verifyTables(db *badger.DB) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = errors.New("a table block fails its checksum")
		}
	}()
	return db.VerifyChecksum()
}

// Close flushes and closes the store and stops Badger's goroutines.
func (s *Store) Close() error {
	s.life.Lock()
	defer s.life.Unlock()
	if s.closed {
		return nil
	}
	s.closed = true
	return s.db.Close()
}

// use takes the store for one operation; release with done.
func (s *Store) use() error {
	s.life.RLock()
	if s.closed {
		s.life.RUnlock()
		return ErrClosed
	}
	return nil
}

func (s *Store) done() { s.life.RUnlock() }

// markerFile sits beside Badger's files and says the directory holds a
// store. Badger forgets its tables when its MANIFEST is damaged (it deletes
// table files the MANIFEST does not name, and opens empty): without the
// marker the store would take that for a new store and carry on empty.
const markerFile = "IMECE-LEDGER-STORE"

// checkVersion accepts a store of this version, stamps an empty one, and
// refuses anything else, including a store whose Badger files opened empty.
func (s *Store) checkVersion() error {
	var found []byte
	empty := true
	err := s.db.View(func(txn *badger.Txn) error {
		item, err := txn.Get(versionKey())
		if err == nil {
			found, err = item.ValueCopy(nil)
			return err
		}
		if !errors.Is(err, badger.ErrKeyNotFound) {
			return err
		}
		it := txn.NewIterator(badger.IteratorOptions{})
		defer it.Close()
		it.Rewind()
		empty = !it.Valid()
		return nil
	})
	if err != nil {
		return fmt.Errorf("store: read version: %w", err)
	}
	marker := filepath.Join(s.dir, markerFile)
	_, statErr := os.Stat(marker)
	switch {
	case found != nil:
		if len(found) != 4 || binary.BigEndian.Uint32(found) != storeVersion {
			return fmt.Errorf("%w: found %x, want %d", ErrVersion, found, storeVersion)
		}
		if errors.Is(statErr, fs.ErrNotExist) && !s.cfg.readOnly {
			return writeMarker(s.dir)
		}
		return nil
	case !empty:
		return fmt.Errorf("%w: no version key in a non-empty directory", ErrVersion)
	case statErr == nil:
		return fmt.Errorf("%w: the store in %s opened empty: Badger lost its tables (a damaged MANIFEST?); restore a copy or start a new store and resync", ErrCorrupt, s.dir)
	case s.cfg.readOnly:
		return nil
	}
	if err := s.db.Update(func(txn *badger.Txn) error {
		return txn.Set(versionKey(), binary.BigEndian.AppendUint32(nil, storeVersion))
	}); err != nil {
		return err
	}
	return writeMarker(s.dir)
}

// writeMarker creates the marker file durably.
func writeMarker(dir string) error {
	f, err := os.OpenFile(filepath.Join(dir, markerFile), os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o600)
	if err != nil {
		return fmt.Errorf("store: marker: %w", err)
	}
	_, err = fmt.Fprintf(f, "imece ledger store, format %d\n", storeVersion)
	if serr := f.Sync(); err == nil {
		err = serr
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("store: marker: %w", err)
	}
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("store: marker: %w", err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("store: marker: %w", err)
	}
	return nil
}

// readBlock reads and decodes the stored block (owner, seq), checking that it
// is the block its key says. It does not verify the signature.
func readBlock(txn *badger.Txn, owner ledger.Key, seq uint64) (*ledger.Block, error) {
	item, err := txn.Get(blockKey(owner, seq))
	if errors.Is(err, badger.ErrKeyNotFound) {
		return nil, ErrNotFound
	}
	if err != nil {
		return nil, err
	}
	var b *ledger.Block
	err = item.Value(func(v []byte) error {
		b, err = decodeStored(owner, seq, v)
		return err
	})
	return b, err
}

// itemBlock decodes the block an iterator over tBlock is at.
func itemBlock(item *badger.Item) (*ledger.Block, error) {
	owner, seq, err := parseBlockKey(item.Key())
	if err != nil {
		return nil, err
	}
	var b *ledger.Block
	if err := item.Value(func(v []byte) (err error) {
		b, err = decodeStored(owner, seq, v)
		return err
	}); err != nil {
		return nil, &BlockError{Owner: owner, Seq: seq, Err: err}
	}
	return b, nil
}

// lookupID finds where the block with this ID is stored, ErrNotFound if
// nowhere.
func lookupID(txn *badger.Txn, id ledger.BlockID) (ledger.Key, uint64, error) {
	item, err := txn.Get(idKey(id))
	if errors.Is(err, badger.ErrKeyNotFound) {
		return ledger.Key{}, 0, ErrNotFound
	}
	if err != nil {
		return ledger.Key{}, 0, err
	}
	var owner ledger.Key
	var seq uint64
	err = item.Value(func(v []byte) (err error) {
		owner, seq, err = parseBlockRef(v)
		return err
	})
	return owner, seq, err
}

// decodeStored decodes a stored block value and checks it against its key.
func decodeStored(owner ledger.Key, seq uint64, v []byte) (*ledger.Block, error) {
	b, err := ledger.DecodeBlock(v)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrCorrupt, err)
	}
	if b.Owner != owner || b.Seq != seq {
		return nil, fmt.Errorf("%w: stored as block %d of %x, is block %d of %x", ErrCorrupt,
			seq, owner[:], b.Seq, b.Owner[:])
	}
	return b, nil
}

// badgerLogger routes Badger's logs to slog. Its info and debug chatter
// (compactions, replays) go to debug; warnings and errors keep their level.
type badgerLogger struct{ l *slog.Logger }

func (b badgerLogger) Errorf(f string, a ...any)   { b.log(slog.LevelError, f, a) }
func (b badgerLogger) Warningf(f string, a ...any) { b.log(slog.LevelWarn, f, a) }
func (b badgerLogger) Infof(f string, a ...any)    { b.log(slog.LevelDebug, f, a) }
func (b badgerLogger) Debugf(f string, a ...any)   { b.log(slog.LevelDebug, f, a) }

func (b badgerLogger) log(level slog.Level, f string, a []any) {
	ctx := context.Background()
	if !b.l.Enabled(ctx, level) {
		return
	}
	b.l.Log(ctx, level, "badger", "line", strings.TrimSpace(fmt.Sprintf(f, a...)))
}
