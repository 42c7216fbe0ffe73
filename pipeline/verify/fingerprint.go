package verify

import (
	"errors"
	"fmt"
	"math"
)

// Fingerprint sizes. K entries and P projections keep a fingerprint near 200
// bytes whatever the model's width, yet a fault must stay hidden from 16 of the
// largest coordinates and 8 random directions at once to go unseen.
const (
	// TopK is how many of a contribution's largest coordinates a fingerprint keeps.
	TopK = 16
	// Projections is how many seeded random directions it measures.
	Projections = 8
	// MaxDim bounds the width of a fingerprinted row (and so a Printer's memory).
	MaxDim = 1 << 17
)

// ErrFingerprint: a fingerprint is malformed (lengths that disagree, indices out
// of the row, non-finite values) and cannot be compared. A peer that sends one is
// broken or lying; it is never a float difference.
var ErrFingerprint = errors.New("verify: malformed fingerprint")

// Fingerprint is a compact summary of what one hop added to one position's hidden
// state: d = out − in, the hop's contribution to the residual stream, not out
// itself. Fingerprinting d rather than out matters: in a deep model the residual
// that passed through unchanged dominates out, and a fault that changes a layer's
// contribution by 5% changes out by a fraction of that, down where honest
// rounding differences live. Measured on d, the same fault is 5%.
type Fingerprint struct {
	// Dim is the row's width.
	Dim int
	// Norm is ‖d‖.
	Norm float32
	// OutNorm is ‖out‖, the row as the stage sent it: the transport allowance
	// (an f16 hop rounds out, not d) scales with it.
	OutNorm float32
	// Idx are the TopK coordinates of largest |d|, largest first (ties to the
	// lower index); Val are d there and Out are |out| there.
	Idx []int32
	Val []float32
	Out []float32
	// Proj are d's components along the Printer's seeded random unit directions.
	Proj []float32
}

// Printer fingerprints rows of one width with one seed. The seed is chosen by
// whoever asks for an audit, after the work was done, so nobody can shape an
// output to pass a projection it did not know. A Printer is immutable and safe
// for concurrent use.
type Printer struct {
	dim  int
	seed uint64
	// dirs[j] is the j-th direction: ±1/√dim per coordinate.
	dirs [Projections][]float32
}

// NewPrinter returns the Printer for rows of dim values and seed.
func NewPrinter(seed uint64, dim int) (*Printer, error) {
	if dim < 1 || dim > MaxDim {
		return nil, fmt.Errorf("verify: row width %d outside [1, %d]", dim, MaxDim)
	}
	p := &Printer{dim: dim, seed: seed}
	v := float32(1 / math.Sqrt(float64(dim)))
	for j := range p.dirs {
		d := make([]float32, dim)
		s := seed ^ uint64(j+1)*0x9e3779b97f4a7c15
		for i := range d {
			// 64 signs per draw of splitmix64.
			if i%64 == 0 {
				s = splitmix(s)
			}
			if s>>(i%64)&1 == 1 {
				d[i] = v
			} else {
				d[i] = -v
			}
		}
		p.dirs[j] = d
	}
	return p, nil
}

// Dim is the width the Printer fingerprints.
func (p *Printer) Dim() int { return p.dim }

// Seed is the Printer's seed.
func (p *Printer) Seed() uint64 { return p.seed }

func splitmix(x uint64) uint64 {
	x += 0x9e3779b97f4a7c15
	x = (x ^ x>>30) * 0xbf58476d1ce4e5b9
	x = (x ^ x>>27) * 0x94d049bb133111eb
	return x ^ x>>31
}

// Hidden fingerprints the contribution out − in of a hop at one position: in is
// the row the hop received (the embedding, for the first hop), out the row it
// sends on. Both must be Dim() long: rows of another width are an error, not a
// panic, since they may come from a peer.
func (p *Printer) Hidden(out, in []float32) (Fingerprint, error) {
	if len(out) != p.dim || len(in) != p.dim {
		return Fingerprint{}, fmt.Errorf("verify: fingerprint of rows %d and %d wide, printer is %d", len(out), len(in), p.dim)
	}
	f := Fingerprint{Dim: p.dim, Idx: make([]int32, 0, TopK), Val: make([]float32, 0, TopK),
		Out: make([]float32, 0, TopK), Proj: make([]float32, Projections)}
	var norm, outNorm float64
	// Top-K of |d| by insertion into a sorted window, as the stage's top-k of
	// logits does: K is small next to the width.
	k := min(TopK, p.dim)
	abs := make([]float32, 0, k)
	for i := range out {
		d := out[i] - in[i]
		norm += float64(d) * float64(d)
		outNorm += float64(out[i]) * float64(out[i])
		for j := range f.Proj {
			f.Proj[j] += d * p.dirs[j][i]
		}
		a := float32(math.Abs(float64(d)))
		if len(abs) == k && a <= abs[k-1] {
			continue
		}
		j := len(abs)
		if j < k {
			abs = append(abs, 0)
			f.Idx, f.Val, f.Out = append(f.Idx, 0), append(f.Val, 0), append(f.Out, 0)
		} else {
			j = k - 1
		}
		for j > 0 && abs[j-1] < a {
			abs[j], f.Idx[j], f.Val[j], f.Out[j] = abs[j-1], f.Idx[j-1], f.Val[j-1], f.Out[j-1]
			j--
		}
		abs[j], f.Idx[j], f.Val[j], f.Out[j] = a, int32(i), d, float32(math.Abs(float64(out[i])))
	}
	f.Norm = float32(math.Sqrt(norm))
	f.OutNorm = float32(math.Sqrt(outNorm))
	return f, nil
}

// Validate checks that f is a well-formed fingerprint of a row of dim values.
func (f *Fingerprint) Validate(dim int) error {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%w: %s", ErrFingerprint, fmt.Sprintf(format, args...))
	}
	switch {
	case f.Dim != dim:
		return bad("width %d, want %d", f.Dim, dim)
	case len(f.Idx) != min(TopK, dim) || len(f.Val) != len(f.Idx) || len(f.Out) != len(f.Idx):
		return bad("%d indices, %d values, %d outputs", len(f.Idx), len(f.Val), len(f.Out))
	case len(f.Proj) != Projections:
		return bad("%d projections", len(f.Proj))
	case !finite(f.Norm) || f.Norm < 0 || !finite(f.OutNorm) || f.OutNorm < 0:
		return bad("norms %v, %v", f.Norm, f.OutNorm)
	}
	seen := make(map[int32]bool, len(f.Idx))
	for i, x := range f.Idx {
		if x < 0 || int(x) >= dim || seen[x] {
			return bad("index %d", x)
		}
		seen[x] = true
		if !finite(f.Val[i]) || !finite(f.Out[i]) || f.Out[i] < 0 {
			return bad("entry %d: %v, %v", i, f.Val[i], f.Out[i])
		}
	}
	for _, v := range f.Proj {
		if !finite(v) {
			return bad("projection %v", v)
		}
	}
	return nil
}

func finite(v float32) bool { return !math.IsNaN(float64(v)) && !math.IsInf(float64(v), 0) }

// projectionSigmas is how many standard deviations of transport rounding a
// projection may differ by. A projection sums Dim independent rounding errors
// with random signs, so its error is near-Gaussian; six sigmas are never reached
// by chance in any number of audits this network will run.
const projectionSigmas = 6

// CompareHidden scores how far apart two fingerprints of the same hop and
// position are, as an estimate of ‖error‖/‖d‖: the relative error of the hop's
// contribution. Honest recomputations differ by rounding only (see the
// calibration in doc.go); a Score above HiddenThreshold is a wrong answer.
//
// quantum is the unit roundoff of how the rows travelled between stages (0 for
// f32, 2⁻¹¹ for f16, see Quantum): one side's out was rounded to it and the
// other's was not, and that rounding, scaled by out rather than d, is allowed
// for before scoring. Both fingerprints must be valid for the same width.
func CompareHidden(a, b Fingerprint, quantum float64) Score {
	s := math.Max(float64(a.Norm), float64(b.Norm))
	var sc Score
	if s == 0 {
		return sc // both hops added nothing: equal
	}
	sqrtD := math.Sqrt(float64(a.Dim))
	unit := s / sqrtD // the typical size of one coordinate of d
	outNorm := math.Max(float64(a.OutNorm), float64(b.OutNorm))
	note := func(part string, v float64) {
		if v > sc.Value {
			sc.Value, sc.Part = v, part
		}
	}
	// |‖a‖ − ‖b‖| ≤ ‖a − b‖, and rounding out to the quantum moves d by at most
	// quantum·‖out‖.
	note("norm", pos(math.Abs(float64(a.Norm)-float64(b.Norm))-quantum*outNorm)/s)
	// A projection of the rounding error has standard deviation
	// quantum·‖out‖/√(3·Dim) (each coordinate's error uniform within ±quantum·|out_i|).
	projAllow := projectionSigmas * quantum * outNorm / math.Sqrt(3*float64(a.Dim))
	for j := range a.Proj {
		note("projection", pos(math.Abs(float64(a.Proj[j])-float64(b.Proj[j]))-projAllow)/unit)
	}
	compareTop(a, b, quantum, unit, note)
	compareTop(b, a, quantum, unit, note)
	return sc
}

// compareTop scores a's top entries against b's: a shared coordinate by its
// difference, one b does not list by how far it would have to fall to drop out
// of b's top entries.
func compareTop(a, b Fingerprint, quantum, unit float64, note func(string, float64)) {
	kth := 0.0 // the smallest |d| in b's list: every coordinate b omits is below it
	if n := len(b.Val); n > 0 {
		kth = math.Abs(float64(b.Val[n-1]))
	}
	for i, idx := range a.Idx {
		j := indexOf(b.Idx, idx)
		if j < 0 {
			note("top-k membership", pos(math.Abs(float64(a.Val[i]))-kth-quantum*float64(a.Out[i]))/unit)
			continue
		}
		allow := quantum * math.Max(float64(a.Out[i]), float64(b.Out[j]))
		note("top-k value", pos(math.Abs(float64(a.Val[i])-float64(b.Val[j]))-allow)/unit)
	}
}

func indexOf(s []int32, x int32) int {
	for i, v := range s {
		if v == x {
			return i
		}
	}
	return -1
}

func pos(x float64) float64 { return math.Max(x, 0) }

// Score is a comparison's outcome: Value is the estimated relative error, Part
// names the part of the fingerprint that set it (for logs and calibration).
type Score struct {
	Value float64
	Part  string
}

// Logits are the largest logits after one position, with their token ids,
// largest first: what a client keeps of each result, and so what the last hop is
// checked on.
type Logits struct {
	IDs  []int32
	Vals []float32
}

// Validate checks that l is a well-formed list for a vocabulary of vocab.
func (l *Logits) Validate(vocab int) error {
	if len(l.IDs) == 0 || len(l.IDs) != len(l.Vals) || len(l.IDs) > vocab {
		return fmt.Errorf("%w: %d ids and %d logits", ErrFingerprint, len(l.IDs), len(l.Vals))
	}
	seen := make(map[int32]bool, len(l.IDs))
	for i, id := range l.IDs {
		if id < 0 || int(id) >= vocab || seen[id] || !finite(l.Vals[i]) {
			return fmt.Errorf("%w: entry %d: id %d, logit %v", ErrFingerprint, i, id, l.Vals[i])
		}
		seen[id] = true
	}
	return nil
}

// CompareLogits scores two top-logit lists of the same position: the largest
// difference of a shared logit, or the distance by which a logit one side lists
// would have to fall to be omitted by the other, relative to the lists' spread
// (their root mean square about their mean). The shorter list sets how many are
// compared, so a client that kept 16 can be checked against an auditor's 16.
// Logits travel as f32 and so need no transport allowance.
func CompareLogits(a, b Logits) Score {
	n := min(len(a.IDs), len(b.IDs))
	a.IDs, a.Vals, b.IDs, b.Vals = a.IDs[:n], a.Vals[:n], b.IDs[:n], b.Vals[:n]
	var sc Score
	if n == 0 {
		return sc
	}
	s := math.Max(spread(a.Vals), spread(b.Vals))
	if s == 0 {
		s = math.Max(math.Abs(float64(a.Vals[0])), 1)
	}
	note := func(part string, v float64) {
		if v > sc.Value {
			sc.Value, sc.Part = v, part
		}
	}
	one := func(a, b Logits) {
		kth := float64(b.Vals[n-1])
		for i, id := range a.IDs {
			if j := indexOf(b.IDs, id); j >= 0 {
				note("logit", math.Abs(float64(a.Vals[i])-float64(b.Vals[j]))/s)
			} else {
				note("logit membership", pos(float64(a.Vals[i])-kth)/s)
			}
		}
	}
	one(a, b)
	one(b, a)
	return sc
}

// spread is the root mean square of v about its mean.
func spread(v []float32) float64 {
	var m float64
	for _, x := range v {
		m += float64(x)
	}
	m /= float64(len(v))
	var ss float64
	for _, x := range v {
		ss += (float64(x) - m) * (float64(x) - m)
	}
	return math.Sqrt(ss / float64(len(v)))
}

// Transport quanta for CompareHidden: the unit roundoff of the activation dtype
// rows travel in between stages.
const (
	// QuantumF32: f32 transport is exact; rounding inside the computation is what
	// the thresholds allow for.
	QuantumF32 = 0.0
	// QuantumF16: f16 rounds to 11 significant bits, within 2⁻¹¹ of the value.
	QuantumF16 = 1.0 / 2048
)
