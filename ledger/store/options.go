package store

import (
	"errors"
	"log/slog"
	"time"

	"github.com/imece/imece/ledger"
)

// Defaults sized for a node that shares its machine with inference: the store
// is small (a block is a few hundred bytes) and read mostly near the heads, so
// it needs little cache.
const (
	// DefaultCacheSize is Badger's block cache.
	DefaultCacheSize = 32 << 20
	// DefaultMemTableSize is one Badger memtable; a few are kept.
	DefaultMemTableSize = 16 << 20
	// MaxRange bounds how many blocks one Range call returns, so a sync
	// request cannot ask the store for a whole chain at once.
	MaxRange = 1024
)

// Option configures a Store.
type Option func(*config) error

type config struct {
	logger       *slog.Logger
	now          func() time.Time
	cacheSize    int64
	memTableSize int64
	syncWrites   bool
	readOnly     bool
	genesis      *ledger.Genesis
	costOf       func(model []byte) (ledger.Cost, bool)
	// verifyOnly lets VerifyDir open a store without Open's replay, which
	// would refuse a damaged store, so Verify can name its first bad block.
	verifyOnly bool
	// rawReads turns Badger's block checksums off: VerifyDir's second look at
	// a store whose tables fail them, so that the damaged ledger block itself
	// is read, fails its own checks (encoding, signature, link) and is named.
	rawReads bool
}

func defaultConfig() config {
	return config{
		logger:       slog.New(slog.DiscardHandler),
		now:          time.Now,
		cacheSize:    DefaultCacheSize,
		memTableSize: DefaultMemTableSize,
		syncWrites:   true,
		genesis:      ledger.DefaultGenesis(),
	}
}

func (c *config) validate() error {
	switch {
	case c.logger == nil:
		return errors.New("store: nil logger")
	case c.now == nil:
		return errors.New("store: nil clock")
	case c.cacheSize < 0:
		return errors.New("store: negative cache size")
	case c.memTableSize < 1<<20:
		return errors.New("store: memtable smaller than 1 MiB")
	case c.genesis == nil:
		return errors.New("store: nil genesis")
	}
	return c.genesis.Validate()
}

// WithGenesis sets the network whose rules the store's balances follow (its
// starter allowance, tiers and precision factors). The default is
// ledger.DefaultGenesis, the network of `imece testnet`.
func WithGenesis(g *ledger.Genesis) Option {
	return func(c *config) error { c.genesis = g; return nil }
}

// WithCosts gives the store the costs of the models it knows, by binary model
// CID, so it can verify the amounts of proposals and settle their receipts.
// A receipt on a model it does not know stays pending until Revalidate finds
// its cost. Without it no receipt settles.
func WithCosts(costOf func(model []byte) (ledger.Cost, bool)) Option {
	return func(c *config) error { c.costOf = costOf; return nil }
}

// WithLogger routes the store's logs, Badger's included (Badger's own chatter
// at debug level), to l.
func WithLogger(l *slog.Logger) Option {
	return func(c *config) error { c.logger = l; return nil }
}

// WithClock sets the clock Append stamps blocks with, so tests control time.
func WithClock(now func() time.Time) Option {
	return func(c *config) error { c.now = now; return nil }
}

// WithCacheSize sets Badger's block cache in bytes (0 disables it): a node
// that verifies big stores often may want more.
func WithCacheSize(n int64) Option {
	return func(c *config) error { c.cacheSize = n; return nil }
}

// WithMemTableSize sets the size of one Badger memtable in bytes.
func WithMemTableSize(n int64) Option {
	return func(c *config) error { c.memTableSize = n; return nil }
}

// WithReadOnly opens the store without writing to it, so `imece ledger verify`
// and `export` can inspect a store without changing it. A read-only store
// refuses Add and Append with ErrReadOnly. Badger's directory lock still keeps
// out a node that has the store open. Badger opens read-only only a store that
// was closed cleanly: after a crash, open it once read-write (the node's
// restart does) so the log of the last writes is replayed.
func WithReadOnly() Option {
	return func(c *config) error { c.readOnly = true; return nil }
}

// withoutSync turns off sync writes. It is unexported on purpose: a block a
// node acknowledged must survive a crash (DESIGN.md §5), so only the
// benchmarks' setup, which rebuilds its store when interrupted, uses it.
func withoutSync() Option {
	return func(c *config) error { c.syncWrites = false; return nil }
}
