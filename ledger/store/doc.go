// Package store is the durable, verified home of every chain a node knows: a
// Badger database holding each participant's blocks, the indexes the node's
// queries need, the balances derived from the chains, and the fraud proofs of
// owners who forked.
//
// # The rules are the ledger's
//
// The store decides nothing itself: a ledger.State, rebuilt from the chains
// when the store opens, checks every block (ledger.State.Apply: encoding,
// signature, sequence, link, time, body, replayed windows) and derives the
// balances; the store persists what it accepted. A block that breaks a
// receipt rule is stored, its receipt void. Errors are the ledger's sentinels
// (ErrGap, ErrBrokenLink, ErrFork, ErrDuplicate…), wrapped.
//
// # Writes
//
// Add takes a block of any chain and Append makes, signs and stores the next
// block of the node's own. Each block is one Badger transaction with sync
// writes: the block, its indexes, the pending index and the accounts it
// changes commit together or not at all, and a nil error means the block is
// on disk. A different block for a position already stored is a fork: the
// store records the pair as a fraud proof and freezes the owner (a frozen
// chain is still stored: its receipts are history; the owner has nothing to
// spend). Writes are serialized, so the State and the disk take blocks in the
// same order; a write that fails after the State took its block leaves the
// store refusing writes (ErrFailed) until it is reopened.
//
// # Reads and checks
//
// Open checks the format version and replays every chain into the State,
// checking each block against its key, the ID index and the head, and refuses
// a store that fails, naming the owner and sequence of the first bad block. It
// rewrites stored accounts that disagree with the replay (they are derived).
// Verify walks the same way into a fresh State and also reports accounts that
// disagree; VerifyDir does it to a store Open would refuse. `imece ledger
// verify` prints what they name.
//
// # Key layout
//
// Every key starts with one byte naming its table. Keys are Ed25519 owner keys
// (32 bytes), block IDs (32), sequences (8, big-endian, so a prefix scan walks
// a chain in order) and times (8, Unix milliseconds big-endian with the sign
// bit flipped, so negative times sort first).
//
//	'm' "version"                         → uint32 store format (1)
//	'b' owner seq                         → the block's canonical encoding
//	'i' id                                → owner seq
//	'h' owner                             → seq id time of the chain's head
//	't' party time owner seq              → ∅  history: party's own blocks and
//	                                           the halves of others naming it
//	'c' party counterparty time owner seq → ∅  the same, by counterparty
//	'p' client server seq                 → id  proposals not settled or void
//	'a' owner                             → account: earned, spent, pending
//	                                           earn, pending spend (milli-GFT,
//	                                           uint64 each), frozen (1 byte)
//	'f' owner seq                         → fraud proof (ledger encoding)
//	'z' owner                             → seq of the first fork: frozen
//
// Values are written by this package only; a change of layout is a new
// format version, which Open refuses until a migration exists. Beside
// Badger's files, IMECE-LEDGER-STORE marks the directory as a store: Badger
// opens a store whose MANIFEST is damaged as an empty database, and the mark
// is how Open tells that from a new store.
//
// # What it is not
//
// The store does not talk to the network: ledger/replicate gossips and syncs,
// and calls Add and AddFraudProof with what it receives. It does not define
// the rules either: the encoding, signatures, receipt checks and balance
// arithmetic are package ledger's, so every validator runs the same code
// whatever its storage.
package store
