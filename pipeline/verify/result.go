package verify

import (
	"fmt"
	"slices"
)

// Check is how a result was obtained; the values are the ledger's.
type Check uint8

// The checks.
const (
	// CheckRecompute: the hop was re-executed by other nodes on the inputs it
	// received and its output compared by fingerprints.
	CheckRecompute Check = 1
	// CheckCanary: the hop was part of a chain that answered a canary prompt,
	// whose greedy continuation is known.
	CheckCanary Check = 2
)

// String names the check for logs.
func (c Check) String() string {
	switch c {
	case CheckRecompute:
		return "recompute"
	case CheckCanary:
		return "canary"
	}
	return fmt.Sprintf("Check(%d)", uint8(c))
}

// Verdict is a result's outcome; the values are the ledger's.
type Verdict uint8

// The verdicts.
const (
	Pass Verdict = 1
	Fail Verdict = 2
)

// String names the verdict for logs.
func (v Verdict) String() string {
	switch v {
	case Pass:
		return "pass"
	case Fail:
		return "fail"
	}
	return fmt.Sprintf("Verdict(%d)", uint8(v))
}

// Result is one judged hop: what a node that audited records on its ledger
// (a KindAudit block signed by it), field for field, and what the reliability
// factor of Subject is derived from.
type Result struct {
	// Subject is the Ed25519 public key of the node judged (its wallet).
	Subject [32]byte
	// Session and Hop name the hop judged; Model (a CID in binary form), First and
	// Last what it was to compute.
	Session     [16]byte
	Hop         uint16
	Model       []byte
	First, Last uint16
	// Position is the first position found wrong for a failure, the last position
	// checked for a pass.
	Position uint32
	Check    Check
	Verdict  Verdict
}

// The thresholds of a hop's verdict, from the calibration in doc.go. A hop fails
// when the median of its positions' scores exceeds the median threshold (a
// systematic error, however small each position's), or when any one position's
// score exceeds the spike threshold (a gross error, however rare).
const (
	HiddenMedianThreshold = 0.085
	HiddenSpikeThreshold  = 1.0
	LogitsMedianThreshold = 0.27
	LogitsSpikeThreshold  = 1.5
)

// Tally gathers the per-position scores of one audited hop and gives its
// verdict. The zero Tally judges hidden states; set Logits for a last hop.
type Tally struct {
	// Logits selects the thresholds of logits (the last hop) over those of
	// hidden states.
	Logits bool
	pos    []uint32
	scores []float64
	worst  Score
}

// Add records the score of one position; positions come in increasing order.
func (t *Tally) Add(pos uint32, s Score) {
	t.pos = append(t.pos, pos)
	t.scores = append(t.scores, s.Value)
	if s.Value > t.worst.Value {
		t.worst = s
	}
}

// Judgement is a Tally's outcome.
type Judgement struct {
	Verdict Verdict
	// Position is the first position over a threshold for a failure, the last
	// position scored for a pass.
	Position uint32
	// Median and Worst summarise the scores, for logs.
	Median float64
	Worst  Score
	// Positions is how many positions were scored.
	Positions int
}

// Judge gives the verdict. A tally of no positions passes nothing: it fails,
// since an audit that checked nothing must not count for the subject.
func (t *Tally) Judge() Judgement {
	j := Judgement{Worst: t.worst, Positions: len(t.scores)}
	if len(t.scores) == 0 {
		j.Verdict = Fail
		return j
	}
	med, spike := HiddenMedianThreshold, HiddenSpikeThreshold
	if t.Logits {
		med, spike = LogitsMedianThreshold, LogitsSpikeThreshold
	}
	sorted := slices.Clone(t.scores)
	slices.Sort(sorted)
	j.Median = sorted[len(sorted)/2]
	j.Verdict, j.Position = Pass, t.pos[len(t.pos)-1]
	limit := spike
	if j.Median > med {
		limit = med
	}
	for i, s := range t.scores {
		if s > limit {
			j.Verdict, j.Position = Fail, t.pos[i]
			break
		}
	}
	return j
}
