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
// FLOPs; summed over a chain's hops it is the whole model's. A proposal carries
// the server's multiplier and reliability, and its Amount is priced with them;
// what the server is credited when the receipt settles is the same formula with
// the factors the trust rules allow (below), never more than Amount. Precision
// factors come from the genesis file (f32 1.0, f16/bf16 0.5, 8-bit 0.25, 4-bit
// 0.125).
//
// # Trust
//
// Two more kinds of blocks feed the credit: a node's hardware claim
// (KindHardware, node/hardware's Claim: tier, multiplier, device fingerprint and
// the benchmark's figures) on its own chain, and an audit (KindAudit,
// pipeline/verify's Result: subject, hop, verdict) on its auditor's chain.
// Auditing oneself is refused (a chain rule). A settled receipt of server S,
// client C, proposed at time t (S's block time) credits S
//
//	credit  = min(amount, T_spent) + surplus, the surplus subject to the per-client rule
//	amount  = FLOPs · M · R                     if another client observed S near t
//	amount  = min(FLOPs · M · R, T_spent)       otherwise
//	surplus = amount − min(amount, T_spent)
//	M = max(min(M_claimed, M_hw(t), M_implied, M_evidence), min(M_tier0, M_claimed))
//	R = min(R_claimed, R(S, t))
//
// with, each in milli:
//
//   - M_claimed, R_claimed: the proposal's factors.
//   - M_hw(t), the multiplier in force: S's latest hardware claim before the
//     proposal on its own chain, its multiplier clamped to its tier's interval
//     [tier's, next tier's] of the tier table; without a claim the genesis
//     UnclaimedMultiplier (1.0 in DefaultGenesis), rated with the baseline
//     class's figures below. A claim with another fingerprint or another tier
//     than the one before starts a quarantine of
//     Q · (|tier jump| + 1 if the device is new), Q = QuarantineMillis, from the
//     claim's block time, during which M_hw is at most the multiplier in force
//     when the claim was made (the old claim's); a change during a quarantine
//     can only extend it. A first claim has nothing to be compared with: it
//     applies at once, bounded by what clients observe. Auditors challenge a
//     quarantined node more (State.Quarantine says which).
//   - M_implied, what the client's observation supports. The client puts in its
//     agreement (Spend.Micros) the wall-clock time it attributes to the hop for
//     the window; the ledger compares it with what the claimed hardware takes
//     for the same work, from the manifest's shapes:
//     work = ⌈FLOPs / matmul⌉ + forwards · ⌈weight_bytes / bandwidth⌉ µs, with
//     forwards = tokens + 1 and weight_bytes the hop's stored matrices (the
//     head's for the last stage), and
//     M_implied = min(M_hw, M_hw · work / (observed − forwards · overhead)),
//     overhead = OverheadMicros per forward and hop. A hop that took no longer
//     than its overhead, or that the client did not observe, says nothing
//     against the claim: decode of a tiny model (stories260K, about 0.5 MFLOP a
//     token) is all overhead, and its servers keep their claims. The allowance
//     is subtracted from the observation rather than added to the work, so it
//     never lifts a slow server above what it showed.
//   - M_evidence, the best M_implied that clients other than C observed of S in
//     the evidence epoch of t or the ones next to it (epochs are
//     ⌊time / W⌋, W = WindowMillis). Its absence is what removes the surplus
//     (the second line of the credit): a server whose only client in that time
//     is C could be C's other identity.
//   - R(S, t), the reliability factor, from the audits of S timestamped in
//     [t − W, t) by auditors with standing (an agreement to S earlier on the
//     auditor's own chain: the auditor was S's client), each auditor counted
//     once by its latest verdict there:
//     R = 1000 · (k + pass) / (k + pass + F · fail), k = ReliabilityPrior
//     pseudo-passes, F = FailureWeight (4 and 4: one failing auditor alone gives
//     0.5; no audits, 1.0).
//   - M_tier0, the lowest tier's multiplier: a server is never credited below
//     the slowest class per FLOP unless it claims less itself.
//   - The per-client rule: in each evidence epoch, S's receipts mint the
//     surplus of all its clients but the one whose surplus is largest (its
//     receipts credit its spend and no more). Minting is thereby tied to work
//     for independent clients: whichever client is a colluder, what is left
//     is at most the surplus of the others, that is, what the formulas pay
//     for S's work for them (the threat model below shows no rule that reads
//     receipts can leave more).
//
// The inputs are of three sorts: the server's own chain before the proposal
// (M_hw), the receipt itself (M_implied), and sets that only grow (audits of S,
// other clients' observations of S). When a block grows one of these sets,
// State recomputes the credits it affects (S's receipts in (t_audit, t_audit + W],
// or in the three epochs around a new observation that changes an epoch's two
// best observers), so that balances still do not depend on the order chains
// arrive in. State.Multiplier and State.Reliability give M_hw and R for any key
// and time: servers propose with them, clients refuse proposals above them, and
// route planners weigh nodes by them (a failed audit cuts a node's earnings and
// its routing share alike).
//
// # Threat model: self-dealing
//
// The attacker owns several identities (keys are free) and runs real or fake
// servers and clients. It controls everything its identities sign: hardware
// claims (figures that rate at any tier), agreements (any observed time: a
// client colluding with a server reports whatever throughput the server
// wants), the shape of its sessions (long prompts and one token maximise
// FLOPs_delivered against T_spent, which counts only tokens), and its clocks
// within the chain rules. It does not control other identities' chains, so it
// cannot sign observations or audits in their names, and it cannot make
// honest clients accept proposals dated far from their clocks (maxClockSkew in
// node) or above what their chains give.
//
// Without these rules, two identities A and B trade inference and mint without
// limit: A spends at B, B earns up to the top tier's multiplier over the
// precision factor times that (64× for a 4-bit model, far more with long
// prompts), B spends it at A, and so on. With them:
//
//   - A pair alone mints nothing. Every receipt between A and B has no
//     independent evidence, so it credits at most what its client spent: each
//     round is a transfer at best, whatever tiers are claimed or throughputs
//     reported. The simulation (selfdeal_test.go: ping-pong, one-way with a fake
//     top-tier claim, one-way with a fake throughput) measures a gain of 0 per
//     GFLOP computed, against 1.0 GFT per GFLOP for honest baseline-class
//     serving.
//   - A pair whose server also serves independent clients mints from its
//     colluder's receipts at most at the multiplier the independent clients
//     observed, and the epoch leaves out its largest client's surplus,
//     whoever that is: if the colluder's, the pair keeps what the formulas
//     pay its independent work; if a real client's, the colluder's surplus is
//     below that client's, and the pair again keeps at most what the formulas
//     pay its work. This holds even when the colluder's receipts are for work
//     never done (the ledger sees receipts, not computation; a colluder's
//     sessions are private and cannot be audited): the simulation measures
//     1.00 GFT per GFLOP computed, the formulas' pay for honest serving on the
//     same hardware, with fake work larger than or as large as each
//     independent client's, and 0.24–0.33 when the colluder's work is real
//     but its claims and timings fake.
//   - Why the rule leaves out a whole client's surplus: the ledger cannot
//     tell a colluder's receipts from an independent client's that look the
//     same. Say S's clients in an epoch bring surpluses X_1 ≥ X_2 ≥ … ≥ X_n,
//     and any one of them may be a colluder's fake work. A rule that mints f
//     keeps the pair within the formulas' pay for its real work only if
//     f ≤ Σ X − X_i for every i, that is f ≤ Σ X − X_1: leaving out the
//     largest is the most a rule that reads receipts can pay. The price falls
//     on honest servers: with n equal clients in an epoch (W, a day), one in
//     n clients' surplus is not minted (the simulation's honest server, five
//     clients a day: 0.81 of the formulas' pay; a node of a real network
//     serves many more). A pair therefore earns, per GFLOP computed, what an
//     honest server with one more client earns, never more than the formulas
//     pay: its colluder is worth one honest client, for no computation.
//   - A false hardware claim earns at most what honest clients' observations
//     imply, M_hw · work / (observed − allowance): the overhead allowance is the
//     measurement's resolution, so a server whose hops take a few allowances
//     can claim a faster class and be credited up to that slack (the
//     simulation: an RTX-3060-class server claiming an H100 on a 7B model, 1.40
//     against 1.00). A changed claim waits out its quarantine before it pays.
//   - A malicious auditor must first be its subject's client, counts once per
//     subject per window however many audits it signs, and its failures weigh
//     F: alone it halves the subject's reliability for W at most.
//
// What is not bounded:
//
//   - Rings of three or more identities. B's receipts from A are evidenced by a
//     third identity C's observations of B: keys are free, so a ring supplies
//     its own "independent" clients and its members mint at the multipliers
//     they claim; two colluding clients of one server defeat the per-client
//     rule alike (one is left out, the other mints). Telling a ring from a
//     cooperative's regulars needs more than
//     one chain's worth of history (reputation from the work graph, stake):
//     not done here.
//   - The starter allowance, free to every new key, which a pair can move from
//     client to server (a transfer, not a mint).
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
// allowance, the settlement interval and the trust constants (the unclaimed
// multiplier and the baseline figures it is rated with, the overhead allowance,
// the quarantine, the window W, the reliability prior and failure weight). Its Hash, over a canonical encoding and
// not the JSON's spelling, is what nodes compare when they connect.
//
// # Known limits
//
// See the threat model above for what the trust rules do not bound. A busy
// server's recomputations cost time linear in its receipts of a window, and
// State keeps one small record per settled receipt of every server (its
// credit's inputs) so that late audits can be applied.
//
// # What it is not
//
// This package is pure: values in, values out. It does no I/O — the Badger store
// is ledger/store, the gossip and sync protocols ledger/replicate — and imports no
// libp2p, so every validator runs exactly this code. Time is the caller's: block
// constructors take the clock's reading.
package ledger
