// Package store is the durable, verified home of every chain a node knows: a
// Badger database holding each participant's blocks, the indexes the node's
// queries need, the balances derived from the chains, and the fraud proofs of
// owners who forked.
//
// # Writes
//
// Add takes a block of any chain and Append makes, signs and stores the next
// block of the node's own. Before writing, the store checks the block's
// encoding and signature, that it is the next position of its chain and links
// to the stored head, and the ledger's rules. Each block is one Badger
// transaction with sync writes: the block, its indexes and every aggregate it
// changes commit together or not at all, and a nil error means the block is on
// disk. A different block for a position already stored is a fork: the store
// records the pair as a fraud proof and freezes the owner in that same
// transaction. Writers of one chain are serialized; chains are written in
// parallel, Badger's conflict detection retrying the rare transactions that
// touch the same cross-chain keys.
//
// # Reads and checks
//
// Open re-verifies every chain's head (it decodes, is the block the head names,
// verifies, links to the block before it, nothing is stored past it) and the
// format version, and refuses a store that fails, naming the owner and
// sequence. Verify walks every chain from its first block and names the first
// bad block of each bad chain; `imece ledger verify` prints it.
//
// # Key layout
//
// Every key starts with one byte naming its table. Keys are ed25519 owner keys
// (32 bytes), block IDs (32), sequences (8, big-endian, so a prefix scan walks
// a chain in order) and times (8, Unix milliseconds big-endian with the sign
// bit flipped, so negative times sort first).
//
//	'm' "version"                         → uint32 store format (1)
//	'b' owner seq                         → the block's canonical encoding
//	'i' id                                → owner seq
//	'h' owner                             → seq id of the chain's head
//	't' party time owner seq              → ∅ history: party's own blocks and
//	                                        the halves of others naming it
//	'c' party counterparty time owner seq → ∅ the same, by counterparty
//	'p' client server seq                 → ∅ Earn proposals awaiting the
//	                                        client's agreement
//	'a' owner                             → the owner's account (balance and
//	                                        totals), kept with the chains
//	'f' owner seq                         → fraud proof: the two blocks
//	'z' owner                             → seq of the first fork: frozen
//
// # What it is not
//
// The store does not talk to the network: ledger/replicate gossips and syncs,
// and calls Add with what it receives. It does not define the rules either: the
// encoding, signatures, receipt checks and balance arithmetic are package
// ledger's, so every validator runs the same code whatever its storage.
package store
