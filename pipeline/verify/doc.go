// Package verify checks that volunteers compute what they claim: activation
// fingerprints, their comparison with tolerances calibrated for honest
// floating-point differences, the verdict of an audited hop, and canaries.
//
// It is pure code, values in and values out: the audit protocol that moves
// rows and fingerprints between peers is pipeline's (audit.go, auditor.go,
// audit_wire.go), and the ledger records that results become, with the
// reliability factor derived from them, are ledger's. It deliberately does not
// decide whom to audit or what a failure costs.
//
// # Fingerprints
//
// An audited hop is re-executed by another node serving the same layers, on
// the very rows the hop received (kept by its stage for the session's client)
// and in a fresh KV session from position 0. Comparing whole rows would cost
// the model's width per position on the wire; a Fingerprint summarises a row
// in about 200 bytes. It measures d = out − in, the hop's contribution to the
// residual stream, not out itself: in a deep model the residual that passed
// through unchanged dominates out, and a fault that changes a layer's
// contribution by 5% would hide under honest rounding if measured on out. A
// fingerprint keeps ‖d‖, ‖out‖, the TopK (16) coordinates of largest |d| with
// their values, and d's components along Projections (8) random ±1/√dim
// directions seeded by the auditing client after the work, so no stage can
// shape an output to pass a test it did not know.
//
// CompareHidden scores two fingerprints as an estimate of ‖error‖/‖d‖: the
// largest of the norm difference, the projection differences and the top-k
// value and membership differences, each in units of d's typical coordinate.
// When rows travel as f16 one side's out was rounded and the other's was not;
// that rounding, bounded by 2⁻¹¹·|out|, is allowed for (six standard
// deviations for projections) before scoring. The last hop is checked on the
// top logits the client got, by CompareLogits, relative to the lists' spread.
//
// # Verdict
//
// A Tally gathers the scores of the checked positions (8 by default, drawn at
// random) and fails the hop when their median exceeds the median threshold
// (a systematic error, however small at each position) or any one exceeds the
// spike threshold (a gross error, however rare):
//
//	hidden states  median > 0.085  or  one > 1.0
//	logits         median > 0.27   or  one > 1.5
//
// # Calibration
//
// calibration_test.go plays audited hops as the mesh does (the stage prefills
// 12 positions then decodes one by one, the auditor recomputes all positions
// in one batch) across instruction sets (pure Go, AVX2 and AVX-512 kernels,
// which round differently, in both roles), f32 and f16 transport, first,
// middle, last and whole-model ranges, three seeds, and faulty stages. The
// short run (stories260K f32, synthetic q8_0) is part of `go test`; the table
// is the full run, `go test -run TestCalibration -v ./pipeline/verify/ -args
// -calibrate` (9 minutes on two cores), which prints every hop. Synthetic
// models are 4 layers of width 256 over 40 positions; "deep" is 12 layers of
// width 512 over 200 positions. Medians and worsts are over the checked
// positions of one hop, and the table gives the largest over honest hops and
// the smallest over faulty ones:
//
//	model             kind    honest median  honest worst   faulty median: q4_0 weights  skipped layer  random
//	stories260K f32   hidden  1.0e-06        2.7e-06                       0.264         1.52           3.15
//	stories260K f32   logits  4.8e-06        9.6e-06                       0.802         2.59           4.17
//	stories260K f16   hidden  9.9e-07        2.8e-06                       0.27          1.52           3.15
//	stories260K f16   logits  4.7e-06        1.2e-05                       0.811         2.59           4.17
//	synthetic f32     hidden  1.3e-06        2.6e-06                       0.342         1.55           2.52
//	synthetic f32     logits  3.4e-06        9.5e-06                       0.577         1.99           3.56
//	synthetic f16     hidden  1.4e-06        3.1e-06                       0.326         1.54           2.27
//	synthetic f16     logits  4.1e-06        1.1e-05                       0.586         2.05           3.27
//	synthetic q8_0    hidden  0.012          0.029                         0.348         1.56           2.32
//	synthetic q8_0    logits  0.072          0.193                         0.561         2.12           3.58
//	synthetic q4_0    hidden  0.013          0.026                         -             1.56           2.35
//	synthetic q4_0    logits  0.078          0.178                         -             1.82           3.57
//	q8_0 deep         hidden  0.037          0.073                         0.326         0.695          2.38
//	q8_0 deep         logits  0.123          0.431                         0.486         1.37           3.56
//
// Honest recomputations of f32 and f16 weights differ by rounding only
// (1e-6). Quantized weights make honest kernels differ more, since each
// instruction set dequantizes and accumulates blocks in its own order, and
// that sets the thresholds: the median thresholds sit 2.2-2.3× above the
// largest honest median (the deep q8_0 model) and 1.8-3.8× below the smallest
// faulty one (Q4_0 weights in a model claimed as q8_0 or f32, the subtlest
// fault), and the spike thresholds 2.3-3.5× above the worst honest position.
// A model deeper or longer than the deep one narrows the honest margin; run
// -calibrate on it before trusting the thresholds.
//
// # The audit, end to end
//
// A client with a pipeline.Auditor hands it each session when the session
// closes. Each hop is audited with probability p (pipeline.WithAuditRate),
// drawn after the work from a source no stage sees. For hop h the client
// fetches the rows stage h received (its inputs; for the first hop, the
// tokens the client sent) and the rows stage h+1 received (its outputs; for
// the last hop, the logits the client got, of which it keeps the top 16).
// Stages keep up to pipeline.MaxAuditRows rows per session within a byte
// budget, for a retention period after the session, and give them only to the
// key that signed the session's ticket. Auditors are other peers serving the
// hop's layers, those outside the chain first, in random order: the first
// auditor's pass stands, a failure needs a second auditor to agree, and a
// third breaks a tie, so one broken or lying auditor can neither frame an
// honest stage nor clear a faulty one alone. An auditor that is unreachable,
// refuses, or answers garbage is skipped; with no settled verdict there is no
// result. Only the first hop's contribution cannot be fingerprinted by the
// client, which holds no embeddings: its auditors fingerprint the rows it sent
// (the witness) along with their own.
//
// Each judged hop becomes a Result (the fields of the ledger's audit record),
// naming the stage's key, the session and hop, the layers, the first position
// found wrong, the check and the verdict; the node signs it into its ledger,
// where the reliability factor of the subject is derived from its recent
// results and a failure cuts its earnings and routing share.
//
// # Canaries
//
// A Canary is a prompt whose greedy continuation is known (pipeline's
// StoriesCanary: stories260K's reference text). pipeline.RunCanary sends one
// as an ordinary session. A chain that answers it right gives every hop a
// CheckCanary pass. One that diverges implicates the whole chain, and the
// divergence alone does not say which hop: every hop of that session is then
// audited (bisection by audit), hops whose audit passes are cleared, and the
// others get a CheckCanary failure at the divergence besides their audit's
// result. A hop no independent auditor can re-execute stays implicated.
// Volunteers send canaries on their own (node.WithCanaries, `imece node
// --canary-every`): at jittered times, one of several ordinary openings,
// answered beforehand on the volunteer's own copy of the model, through
// chains of other nodes, paid like any session, so that a stage cannot tell
// canaries from clients' work.
//
// # Watch
//
// A client audits the hops of a node under watch — its hardware claim in
// quarantine, or its reliability below 1.0 — four times as often as its base
// rate (node.WatchFactor, pipeline.WithAuditRateFor): a node that changed
// hardware, or failed once, earns its standing back under closer scrutiny.
//
// # Limits
//
// An auditor's re-execution is not paid: auditing is the price of trusting
// the network, borne by the replicas that serve the same layers. Stages keep
// the inputs of at most MaxAuditRows positions of a session, so later
// positions of very long sessions cannot be audited. A colluding client's
// sessions are private and never audited (ledger's threat model says what
// the credit rules do about that).
//
// # Detection
//
// testnet's TestAuditDetection runs twelve volunteers, four replicas of each
// of three spans of stories260K, one replica of each faulty; 40 sessions of 16
// tokens, each through one replica per span in turn, audit rate 0.5 (8 checked
// positions per hop), then the stories260K canary through a chain with each
// faulty volunteer (about 7 s on two cores):
//
//	volunteer              served audited failed detection sessions to  canary
//	                                                  rate   detection
//	random activations         10       4      4      100%           1  diverged at token 0, attributed
//	skipped layer 3            10       5      5      100%           2  diverged at token 14, attributed
//	Q4_0 weights as F32        10       2      2      100%           1  diverged at token 23, attributed
//	honest (9 volunteers)      90      45      0        0% (false positives)
//
// Every audited hop of a faulty volunteer fails, so the sessions until
// detection follow the audit rate alone: 1/p on average. The faulty
// volunteers also audit their honest replicas; they are outvoted.
package verify
