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
// # Forks and freezing
//
// Two different validly signed blocks with the same owner and sequence are a fork:
// the pair is a self-contained fraud proof that any node verifies without trusting
// whoever sent it, and the owner's credits are frozen on every node that sees it.
//
// # What it is not
//
// This package is pure: values in, values out. It does no I/O — the Badger store
// is ledger/store, the gossip and sync protocols ledger/replicate — and imports no
// libp2p, so every validator runs exactly this code.
package ledger
