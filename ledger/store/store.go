package store

import (
	"context"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"

	"github.com/dgraph-io/badger/v4"
	"github.com/dgraph-io/badger/v4/options"

	"github.com/imece/imece/ledger"
)

// Errors of the store itself. Chain-rule violations (gaps, broken links,
// forks, bad signatures, receipt rules) are the ledger's own errors, wrapped.
var (
	// ErrNotFound: the store has no such block, head or account.
	ErrNotFound = errors.New("store: not found")
	// ErrCorrupt: what is stored is not what was written: a block that does not
	// decode, verify or link, an index that disagrees with its chain, a
	// malformed key or value. A BlockError says which block.
	ErrCorrupt = errors.New("store: corrupt")
	// ErrVersion: the directory holds a store of another format (or something
	// that is not a store at all).
	ErrVersion = errors.New("store: unsupported store version")
	// ErrClosed: the store was closed.
	ErrClosed = errors.New("store: closed")
	// ErrReadOnly: the store was opened WithReadOnly.
	ErrReadOnly = errors.New("store: read-only")
	// ErrFrozen: the owner forked its chain; the store keeps the fraud proof
	// and takes no more of its blocks.
	ErrFrozen = errors.New("store: owner frozen after a fork")
)

// BlockError names one bad stored block: which chain, which position, which
// block (zero ID when the bytes do not even decode) and what is wrong with it.
// It matches ErrCorrupt and its cause with errors.Is.
type BlockError struct {
	Owner ledger.Key
	Seq   uint64
	ID    ledger.BlockID
	Err   error
}

func (e *BlockError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "store: block %d of %s", e.Seq, hex.EncodeToString(e.Owner[:]))
	if !e.ID.IsZero() {
		fmt.Fprintf(&b, " (%s)", e.ID.CID())
	}
	fmt.Fprintf(&b, ": %v", e.Err)
	return b.String()
}

// Unwrap lets errors.Is find both ErrCorrupt and the cause.
func (e *BlockError) Unwrap() []error { return []error{ErrCorrupt, e.Err} }

// Head is the tip of a chain: the last block's position and ID. Nodes compare
// heads for anti-entropy and ask for the blocks after their own.
type Head struct {
	Seq uint64
	ID  ledger.BlockID
}

// Store is the durable, verified home of every chain a node knows. It is safe
// for concurrent use; writes to one owner's chain are serialized.
type Store struct {
	db  *badger.DB
	cfg config
	log *slog.Logger

	// life guards db against Close: every operation holds it for reading.
	life   sync.RWMutex
	closed bool

	// owners serializes writers per chain: a block's checks and its commit are
	// one step for its owner. Striped so the lock table never grows.
	owners [64]sync.Mutex
}

func (s *Store) ownerLock(k ledger.Key) *sync.Mutex {
	return &s.owners[binary.BigEndian.Uint16(k[:2])%uint16(len(s.owners))]
}

// Open opens (creating if needed) the store in dir and checks it before
// handing it out: the format version, and for every chain that its head block
// decodes, is the block the head names, verifies, links to the block before
// it, and that nothing is stored past it. A store that fails is refused with a
// BlockError naming the owner and sequence; `imece ledger verify` walks
// everything.
func Open(dir string, opts ...Option) (_ *Store, err error) {
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
	db, err := openBadger(bo)
	if err != nil {
		return nil, fmt.Errorf("store: open %s: %w", dir, err)
	}
	s := &Store{db: db, cfg: cfg, log: cfg.logger}
	defer func() {
		if err != nil {
			db.Close()
		}
	}()
	if err := s.checkVersion(); err != nil {
		return nil, err
	}
	if cfg.skipHeadCheck {
		return s, nil
	}
	if err := s.checkHeads(); err != nil {
		// Badger skips a table block whose checksum fails as if its keys were
		// absent: say so rather than leave "not found" unexplained.
		var be *BlockError
		if cerr := verifyTables(db); cerr != nil && errors.As(err, &be) {
			be.Err = fmt.Errorf("%w; damaged on disk: %w", be.Err, cerr)
		}
		return nil, fmt.Errorf("store: open %s: %w", dir, err)
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

// checkVersion accepts a store of this version, stamps an empty one, and
// refuses anything else.
func (s *Store) checkVersion() error {
	var found []byte
	empty := true
	err := s.db.View(func(txn *badger.Txn) error {
		item, err := txn.Get(versionKey)
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
	switch {
	case found != nil:
		if len(found) != 4 || binary.BigEndian.Uint32(found) != storeVersion {
			return fmt.Errorf("%w: found %x, want %d", ErrVersion, found, storeVersion)
		}
		return nil
	case !empty:
		return fmt.Errorf("%w: no version key in a non-empty directory", ErrVersion)
	case s.cfg.readOnly:
		return nil
	}
	return s.db.Update(func(txn *badger.Txn) error {
		return txn.Set(versionKey, binary.BigEndian.AppendUint32(nil, storeVersion))
	})
}

// checkHeads re-verifies the tip of every chain (see Open).
func (s *Store) checkHeads() error {
	return s.db.View(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{PrefetchValues: true, PrefetchSize: 64, Prefix: []byte{tHead}})
		defer it.Close()
		n := 0
		for it.Rewind(); it.Valid(); it.Next() {
			item := it.Item()
			var owner ledger.Key
			if len(item.Key()) != 1+keyLen {
				return fmt.Errorf("%w: head key of %d bytes", ErrCorrupt, len(item.Key()))
			}
			copy(owner[:], item.Key()[1:])
			v, err := item.ValueCopy(nil)
			if err != nil {
				return err
			}
			h, err := decodeHead(v)
			if err != nil {
				return &BlockError{Owner: owner, Err: err}
			}
			if err := checkHead(txn, owner, h); err != nil {
				return err
			}
			n++
		}
		s.log.Debug("store heads verified", "chains", n)
		return nil
	})
}

// checkHead verifies one chain's tip against what is stored around it.
func checkHead(txn *badger.Txn, owner ledger.Key, h Head) error {
	bad := func(id ledger.BlockID, format string, args ...any) error {
		return &BlockError{Owner: owner, Seq: h.Seq, ID: id, Err: fmt.Errorf(format, args...)}
	}
	b, err := readBlock(txn, owner, h.Seq)
	if err != nil {
		return bad(h.ID, "head block: %w", err)
	}
	if id := b.ID(); id != h.ID {
		return bad(id, "head names %s", h.ID.CID())
	}
	if err := b.VerifySignature(); err != nil {
		return bad(h.ID, "%w", err)
	}
	if h.Seq > 1 {
		prev, err := readBlock(txn, owner, h.Seq-1)
		if err != nil {
			return &BlockError{Owner: owner, Seq: h.Seq - 1, Err: fmt.Errorf("block before the head: %w", err)}
		}
		if id := prev.ID(); id != b.Prev {
			return bad(h.ID, "%w: links to %s, block %d is %s", ErrCorrupt, b.Prev.CID(), h.Seq-1, id.CID())
		}
	}
	if _, err := txn.Get(blockKey(owner, h.Seq+1)); err == nil {
		return &BlockError{Owner: owner, Seq: h.Seq + 1, Err: errors.New("block stored past the head")}
	} else if !errors.Is(err, badger.ErrKeyNotFound) {
		return err
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
