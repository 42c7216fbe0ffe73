// Package ledger is imece's economy: receipts on per-node hash chains, the credit
// formulas, and the rules every node checks when it replicates everyone's chains.
// There is no transfer operation: credits are minted by serving (Earn) and burned
// by using (Spend), and any node derives any balance from the chains.
//
// # Chains and blocks
//
// Each participant appends to its own chain: block = owner key, sequence (from 1),
// the ID of the previous block, kind, time, body, and an Ed25519 signature over a
// domain-separated canonical encoding ("imece/block/1\n" ‖ encoding). A block's ID
// is the SHA2-256 of its encoding with the signature; as a CID it is CIDv1 raw
// sha2-256.
//
// # Receipts
//
// Every hop of a session yields a receipt, settled every N generated tokens and at
// the session's end: two half-blocks on two chains. The server proposes an Earn
// block naming the client, the session and settlement window, the model, its layer
// range, the positions it processed and the tokens the client generated; the
// client checks it against what it sent and against the model's manifest, and
// agrees with a Spend block naming the Earn block. A proposal counts only once its
// agreement exists; an agreement must name a proposal that exists and matches.
//
// # Amounts
//
// Units are integer milli-GFT (1 milli-GFT = 10^6 floating-point operations); no
// float appears in a signed record. FLOPs are computed, never reported: from the
// manifest's shapes (CostOf), the layer range and the positions processed —
// 2·m·n·k per matrix product, attention over the current context length — by the
// same functions on servers, clients and validators.
//
//	T_earned = FLOPs_delivered × Hardware_Multiplier × Reliability_Factor
//	T_spent  = FLOPs_per_model × Output_tokens × Precision_factor
//
// per hop, FLOPs_per_model being the hop's share of the model's per-token matrix
// FLOPs; summed over a chain's hops it is the whole model's. Multiplier and
// reliability come from the server's node record (1.0 until the trust work lands);
// precision factors from the genesis file (f32 1.0, f16/bf16 0.5, 8-bit 0.25,
// 4-bit 0.125).
//
// # Validation: chain rules and receipt rules
//
// Chain rules (ValidateNext) depend on a block's own chain only — signature,
// sequence, link, time never going back, a well-formed body, no receipt with
// oneself — and so does the replay of a window (a server's windows of one
// (client, session) strictly increase along its chain). A block that breaks one
// is refused: its chain ends there until its owner appends a valid block.
//
// Receipt rules (ValidateEarn, ValidatePair) relate a block to its model, the
// genesis file or the other half on another chain. A node may not know the model
// yet, and sees the halves in either order; if these rules refused blocks, which
// blocks a node holds would depend on arrival order. So a block that breaks one
// stays on its chain, and its receipt is void: neither half counts. State
// implements this so that, once every block is applied, balances are the same
// whatever the interleaving (its tests check it).
//
// # Forks and freezing
//
// Two different validly signed blocks with the same owner and sequence are a fork:
// the pair is a self-contained fraud proof (FraudProof) that any node verifies
// without trusting whoever sent it, and the owner's credits are frozen on every
// node that sees it. State sees a fork at a chain's head by itself; a fork of an
// earlier block is for the store, which holds that block, to detect (DetectFork)
// and apply (ApplyFraudProof).
//
// # The network file
//
// Genesis holds what a network agrees on before any block: the tier table (which
// bounds multipliers), the precision factors, the grid weights, the starter
// allowance and the settlement interval. Its Hash, over a canonical encoding and
// not the JSON's spelling, is what nodes compare when they connect.
//
// # Known limits
//
// The starter allowance is free to every new key, and a receipt's multiplier and
// reliability are only bounded here (by the top tier and 1.0), not checked against
// the server's node record: self-dealing between identities of one owner is
// bounded by the trust rules, not by this package yet.
//
// # What it is not
//
// This package is pure: values in, values out. It does no I/O — the Badger store
// is ledger/store, the gossip and sync protocols ledger/replicate — and imports no
// libp2p, so every validator runs exactly this code. Time is the caller's: block
// constructors take the clock's reading.
package ledger
