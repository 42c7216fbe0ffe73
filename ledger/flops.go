package ledger

import (
	"errors"
	"fmt"
	"math"
	"math/bits"
	"slices"
	"strconv"
	"strings"

	"github.com/imece/imece/kernels"
	"github.com/imece/imece/pipeline/model"
)

// The credit formulas, written once: servers price their proposals with them,
// clients check them before agreeing, validators recompute them. Everything is
// integer arithmetic with 128-bit intermediates, flooring, saturating at the
// largest uint64 rather than wrapping, so every node gets the same number.
//
// FLOPs of one position p (0-based, so the context is p+1 long) through layer l:
//
//	2·W_l             the layer's matrix products (2·m·n·k with one row, m = 1)
//	4·(p+1)·qDim      attention: scores Q·Kᵀ (2·qDim per context position) and the
//	                  weighted sum of V (2·qDim per context position)
//
// and 2·Dim·Vocab for the output head, counted for the positions whose logits the
// last stage computes. Norms, rotations, activations and softmax are ignored: they
// are linear in Dim, a rounding error next to the matrices.
//
// Units: 1 GFT (giga-FLOP token) is 10^9 FLOPs of work, so 1 milli-GFT is 10^6.
// With multiplier M, reliability R and precision P in milli:
//
//	Earned = FLOPs · M · R / 10^12          milli-GFT (FLOPs/10^6 · M/1000 · R/1000)
//	Spent  = perToken · tokens · P / 10^9   milli-GFT (FLOPs/10^6 · P/1000)

// ErrCost: a manifest whose cost cannot be computed (a tensor of a layer the
// model does not have, experts that do not divide evenly, no output head), or a
// tensor type without a precision class.
var ErrCost = errors.New("ledger: cannot compute the cost of this model")

// Cost is what a model's FLOPs are computed from: its per-layer matrix weights,
// its attention width and its output head. It is derived from the manifest by
// CostOf and shared, read-only, by every computation on that model.
type Cost struct {
	Layers int
	// QDim is the attention width, Heads·HeadDim.
	QDim uint64
	// PerLayer holds each layer's matrices, Layers of them.
	PerLayer []Matrices
	// Head is the output projection (output.weight, or the token embedding when
	// the model ties them).
	Head Matrices
}

// Matrices summarises a group of weight matrices: how many weights one token
// multiplies through, and what is stored of each type (for the precision factor).
type Matrices struct {
	// Weights counts the weights used per token: for a mixture-of-experts layer
	// the router and ExpertsUsed experts' share of the expert tensors.
	Weights uint64
	// Bytes is the stored size of the matrices by type, in ascending type order.
	Bytes []TypeBytes
}

// TypeBytes is a number of stored bytes of one tensor type.
type TypeBytes struct {
	DType kernels.DType
	Bytes uint64
}

// CostOf derives a model's cost from its manifest. Matrices are the two-
// dimensional blk.i.* tensors; mixture-of-experts tensors (the three-dimensional
// *_exps, or split ffn_{gate,up,down}.E.weight) count for ExpertsUsed/Experts of
// their weights, all experts having the same shape.
func CostOf(mf *model.Manifest) (Cost, error) {
	cfg := mf.Config
	if err := cfg.Validate(); err != nil {
		return Cost{}, fmt.Errorf("%w: %v", ErrCost, err)
	}
	c := Cost{
		Layers:   cfg.Layers,
		QDim:     uint64(cfg.Heads) * uint64(cfg.HeadDim),
		PerLayer: make([]Matrices, cfg.Layers),
	}
	experts := make([]uint64, cfg.Layers)
	var output, embedding *model.TensorEntry
	for i := range mf.Tensors {
		t := &mf.Tensors[i]
		switch t.Name {
		case "output.weight":
			output = t
			continue
		case "token_embd.weight":
			embedding = t
			continue
		}
		layer, rest, ok := layerOf(t.Name)
		if !ok {
			continue
		}
		if layer >= cfg.Layers {
			return Cost{}, fmt.Errorf("%w: tensor %s of a %d-layer model", ErrCost, t.Name, cfg.Layers)
		}
		stacked := strings.Contains(rest, "_exps.")
		e, split := splitExpert(rest)
		expert := stacked || split
		if len(t.Shape) != 2 && !(stacked && len(t.Shape) == 3) {
			continue // norms, biases: not matrices
		}
		if stacked && (len(t.Shape) != 3 || t.Shape[2] != int64(cfg.Experts)) || split && e >= cfg.Experts {
			return Cost{}, fmt.Errorf("%w: expert tensor %s %v of a model with %d experts", ErrCost, t.Name, t.Shape, cfg.Experts)
		}
		n, size, err := tensorSize(t)
		if err != nil {
			return Cost{}, err
		}
		m := &c.PerLayer[layer]
		m.Bytes = addBytes(m.Bytes, t.DType, size)
		if expert {
			experts[layer] = satAdd(experts[layer], n)
		} else {
			m.Weights = satAdd(m.Weights, n)
		}
	}
	for l := range c.PerLayer {
		if experts[l] > 0 {
			if cfg.Experts == 0 || experts[l]%uint64(cfg.Experts) != 0 {
				return Cost{}, fmt.Errorf("%w: layer %d has %d expert weights for %d experts", ErrCost, l, experts[l], cfg.Experts)
			}
			used := satMul(experts[l]/uint64(cfg.Experts), uint64(cfg.ExpertsUsed))
			c.PerLayer[l].Weights = satAdd(c.PerLayer[l].Weights, used)
		}
		if c.PerLayer[l].Weights == 0 {
			return Cost{}, fmt.Errorf("%w: layer %d has no matrices", ErrCost, l)
		}
	}
	head := output
	if head == nil {
		head = embedding
	}
	if head == nil {
		return Cost{}, fmt.Errorf("%w: no output head (output.weight or token_embd.weight)", ErrCost)
	}
	n, size, err := tensorSize(head)
	if err != nil {
		return Cost{}, err
	}
	c.Head = Matrices{Weights: n, Bytes: []TypeBytes{{head.DType, size}}}
	return c, nil
}

// layerOf splits "blk.<i>.<rest>" into i and rest.
func layerOf(name string) (int, string, bool) {
	s, ok := strings.CutPrefix(name, "blk.")
	if !ok {
		return 0, "", false
	}
	num, rest, ok := strings.Cut(s, ".")
	if !ok {
		return 0, "", false
	}
	i, err := strconv.Atoi(num)
	if err != nil || i < 0 || strconv.Itoa(i) != num {
		return 0, "", false
	}
	return i, rest, true
}

// splitExpert reports whether rest names one expert's matrix in the split layout,
// ffn_{gate,up,down}.<e>.weight, and which expert.
func splitExpert(rest string) (int, bool) {
	for _, p := range []string{"ffn_gate.", "ffn_up.", "ffn_down."} {
		if e, ok := strings.CutPrefix(rest, p); ok {
			num, ok := strings.CutSuffix(e, ".weight")
			i, err := strconv.Atoi(num)
			return i, ok && err == nil && i >= 0
		}
	}
	return 0, false
}

// tensorSize returns a tensor's element count and stored bytes.
func tensorSize(t *model.TensorEntry) (elements, size uint64, err error) {
	elements = 1
	for _, d := range t.Shape {
		if d <= 0 {
			return 0, 0, fmt.Errorf("%w: tensor %s has shape %v", ErrCost, t.Name, t.Shape)
		}
		elements = satMul(elements, uint64(d))
	}
	row, err := t.DType.RowBytes(t.Shape[0])
	if err != nil {
		return 0, 0, fmt.Errorf("%w: tensor %s: %v", ErrCost, t.Name, err)
	}
	return elements, satMul(uint64(row), elements/uint64(t.Shape[0])), nil
}

func addBytes(bs []TypeBytes, dt kernels.DType, n uint64) []TypeBytes {
	i, found := slices.BinarySearchFunc(bs, dt, func(tb TypeBytes, dt kernels.DType) int {
		return int(tb.DType) - int(dt)
	})
	if found {
		bs[i].Bytes = satAdd(bs[i].Bytes, n)
		return bs
	}
	return slices.Insert(bs, i, TypeBytes{dt, n})
}

// inRange reports whether [first, last) is a non-empty range of c's layers.
func (c Cost) inRange(first, last int) bool {
	return 0 <= first && first < last && last <= c.Layers && len(c.PerLayer) == c.Layers
}

// FLOPsDelivered is the work of a stage serving layers [first, last) for
// positions [from, to), computing the output head for results of them when it is
// the last stage:
//
//	Σ_{p∈[from,to)} Σ_{l∈[first,last)} (2·W_l + 4·(p+1)·qDim)  +  results·2·head
//
// It is 0 for an empty or impossible range (callers check ranges first).
func FLOPsDelivered(c Cost, first, last int, from, to, results uint32) uint64 {
	if !c.inRange(first, last) || from >= to {
		return 0
	}
	var weights uint64
	for _, m := range c.PerLayer[first:last] {
		weights = satAdd(weights, m.Weights)
	}
	positions := uint64(to - from)
	// Σ_{p∈[from,to)} (p+1) = (to(to+1) − from(from+1)) / 2; to < 2^32, so the
	// products fit in 64 bits.
	context := (uint64(to)*(uint64(to)+1) - uint64(from)*(uint64(from)+1)) / 2
	flops := satMul(satMul(2, weights), positions)
	attention := satMul(satMul(4*uint64(last-first), c.QDim), context)
	flops = satAdd(flops, attention)
	if last == c.Layers {
		flops = satAdd(flops, satMul(satMul(2, c.Head.Weights), uint64(results)))
	}
	return flops
}

// FLOPsPerToken is a stage's share of the model's per-token matrix FLOPs, what
// the client pays for each token it generates through layers [first, last):
// Σ_l 2·W_l, plus 2·head for the last stage. Summed over a chain's stages it is
// the whole model's FLOPs_per_model. It is 0 for an empty or impossible range.
func FLOPsPerToken(c Cost, first, last int) uint64 {
	if !c.inRange(first, last) {
		return 0
	}
	var flops uint64
	for _, m := range c.PerLayer[first:last] {
		flops = satAdd(flops, satMul(2, m.Weights))
	}
	if last == c.Layers {
		flops = satAdd(flops, satMul(2, c.Head.Weights))
	}
	return flops
}

// Earned is T_earned in milli-GFT: FLOPs × multiplier × reliability, the factors
// in milli, floored.
func Earned(flops uint64, multiplierMilli, reliabilityMilli uint32) uint64 {
	return mulDiv(flops, uint64(multiplierMilli)*uint64(reliabilityMilli), 1e12)
}

// Spent is T_spent in milli-GFT: per-token FLOPs × tokens × precision factor (in
// milli), floored.
func Spent(perToken uint64, tokens uint32, precisionMilli uint16) uint64 {
	return mulDiv(perToken, uint64(tokens)*uint64(precisionMilli), 1e9)
}

// PrecisionFactor is the genesis precision factor (milli) of a tensor type's
// class: f32; f16 and bf16; the 8-bit class (Q8_0, and Q6_K); the 4-bit class
// (Q4_0, Q4_K).
func PrecisionFactor(g *Genesis, dt kernels.DType) (uint16, error) {
	switch dt {
	case kernels.F32:
		return g.Precision.F32, nil
	case kernels.F16, kernels.BF16:
		return g.Precision.F16, nil
	case kernels.Q8_0, kernels.Q6_K:
		return g.Precision.Bits8, nil
	case kernels.Q4_0, kernels.Q4_K:
		return g.Precision.Bits4, nil
	}
	return 0, fmt.Errorf("%w: no precision class for tensor type %s", ErrCost, dt)
}

// PrecisionOf is the precision factor of a stage serving layers [first, last):
// that of the type holding the most bytes among the range's matrices (the output
// head's included for the last stage), ties going to the lower factor. Quantized
// models keep a few matrices at higher precision (Q4_K_M stores some in Q6_K);
// the type of most of the weights is what the client gets.
func PrecisionOf(c Cost, g *Genesis, first, last int) (uint16, error) {
	if !c.inRange(first, last) {
		return 0, fmt.Errorf("%w: layers [%d, %d) of a %d-layer model", ErrRange, first, last, c.Layers)
	}
	var total []TypeBytes
	add := func(m Matrices) {
		for _, tb := range m.Bytes {
			total = addBytes(total, tb.DType, tb.Bytes)
		}
	}
	for _, m := range c.PerLayer[first:last] {
		add(m)
	}
	if last == c.Layers {
		add(c.Head)
	}
	var best TypeBytes
	var factor uint16
	for _, tb := range total {
		f, err := PrecisionFactor(g, tb.DType)
		if err != nil {
			return 0, err
		}
		if factor == 0 || tb.Bytes > best.Bytes || (tb.Bytes == best.Bytes && f < factor) {
			best, factor = tb, f
		}
	}
	if factor == 0 {
		return 0, fmt.Errorf("%w: layers [%d, %d) hold no matrices", ErrCost, first, last)
	}
	return factor, nil
}

// Price fills the computed fields of a proposal (Precision, FLOPs, Amount, Spend)
// from its other fields, the model's cost and the genesis: what a server does
// before signing and a validator to check.
func (e *Earn) Price(c Cost, g *Genesis) error {
	first, last := int(e.First), int(e.Last)
	p, err := PrecisionOf(c, g, first, last)
	if err != nil {
		return err
	}
	e.Precision = p
	e.FLOPs = FLOPsDelivered(c, first, last, e.From, e.To, e.Results)
	e.Amount = Earned(e.FLOPs, e.Multiplier, e.Reliability)
	e.Spend = Spent(FLOPsPerToken(c, first, last), e.Tokens, p)
	return nil
}

func satAdd(a, b uint64) uint64 {
	s, carry := bits.Add64(a, b, 0)
	if carry != 0 {
		return math.MaxUint64
	}
	return s
}

func satMul(a, b uint64) uint64 {
	hi, lo := bits.Mul64(a, b)
	if hi != 0 {
		return math.MaxUint64
	}
	return lo
}

// mulDiv is ⌊a·b/d⌋ with a 128-bit product, saturating when the quotient does
// not fit in 64 bits.
func mulDiv(a, b, d uint64) uint64 {
	hi, lo := bits.Mul64(a, b)
	if hi >= d {
		return math.MaxUint64
	}
	q, _ := bits.Div64(hi, lo, d)
	return q
}
