package llama

import (
	"errors"
	"fmt"
	"math"

	"github.com/imece/imece/kernels"
)

// Errors a session returns for input that arrived from elsewhere (a peer, a user).
var (
	// ErrContextFull means the session has no room for more positions.
	ErrContextFull = errors.New("context full")
	// ErrToken means a token id is outside the vocabulary.
	ErrToken = errors.New("token id out of range")
	// ErrShape means an activation buffer does not hold whole rows of the model width.
	ErrShape = errors.New("activation shape mismatch")
)

// maxBatch bounds the rows computed at once: a long prompt is processed in chunks
// of this many positions, which keeps scratch memory small while still giving the
// matrix-matrix product enough rows to amortise reading the weights.
const maxBatch = 256

// Session is one sequence through a stage: the KV cache of the stage's layers and
// the scratch space of a forward pass. It is not safe for concurrent use.
type Session struct {
	st     *Stage
	maxLen int
	pos    int
	k, v   [][]float32 // per layer: [maxLen][KVHeads·HeadDim]

	// scratch, sized for maxBatch rows (or fewer for short sessions)
	rows     int
	xb, xb2  []float32 // rows × Dim
	q, att   []float32 // rows × Heads·HeadDim
	hb, hb2  []float32 // rows × FFN
	route    []float32 // rows × Experts
	byExpert [][]int32 // expert → rows routed to it
	weight   [][]float32
	gather   []float32 // rows × Dim, inputs gathered for one expert
	norm     []float32 // one row, for the output head
	topIdx   []int
	topLogit []float32
}

// NewSession starts a sequence of at most maxLen positions. The KV cache is allocated
// here, once: maxLen × layers × 2 × KVHeads·HeadDim floats.
func (s *Stage) NewSession(maxLen int) (*Session, error) {
	if maxLen <= 0 || maxLen > 1<<20 {
		return nil, fmt.Errorf("session length %d out of range", maxLen)
	}
	c := s.cfg
	kvDim := c.KVHeads * c.HeadDim
	se := &Session{st: s, maxLen: maxLen}
	se.k = make([][]float32, len(s.layers))
	se.v = make([][]float32, len(s.layers))
	for i := range s.layers {
		se.k[i] = make([]float32, maxLen*kvDim)
		se.v[i] = make([]float32, maxLen*kvDim)
	}
	se.grow(min(maxLen, 1))
	if s.IsLast() {
		se.norm = make([]float32, c.Dim)
	}
	return se, nil
}

// grow sizes the scratch buffers for n rows; it allocates only when a larger batch
// than ever before arrives, so steady-state decoding allocates nothing.
func (se *Session) grow(n int) {
	if n <= se.rows {
		return
	}
	c := se.st.cfg
	qDim := c.Heads * c.HeadDim
	se.rows = n
	se.xb = make([]float32, n*c.Dim)
	se.xb2 = make([]float32, n*c.Dim)
	se.q = make([]float32, n*qDim)
	se.att = make([]float32, n*qDim)
	se.hb = make([]float32, n*c.FFN)
	se.hb2 = make([]float32, n*c.FFN)
	if c.Experts > 0 {
		se.route = make([]float32, n*c.Experts)
		se.gather = make([]float32, n*c.Dim)
		se.byExpert = make([][]int32, c.Experts)
		se.weight = make([][]float32, c.Experts)
		for e := range se.byExpert {
			se.byExpert[e] = make([]int32, 0, n)
			se.weight[e] = make([]float32, 0, n)
		}
		se.topIdx = make([]int, c.ExpertsUsed)
		se.topLogit = make([]float32, c.Experts)
	}
}

// Stage is the stage the session runs on.
func (se *Session) Stage() *Stage { return se.st }

// Pos is the number of positions in the KV cache: the position the next row gets.
func (se *Session) Pos() int { return se.pos }

// MaxLen is the session's capacity in positions.
func (se *Session) MaxLen() int { return se.maxLen }

// Rewind forgets every position from pos on, so generation can resume from an
// earlier point (a failed hop is replayed, a draft is rejected).
func (se *Session) Rewind(pos int) error {
	if pos < 0 || pos > se.pos {
		return fmt.Errorf("rewind to %d: session holds %d positions", pos, se.pos)
	}
	se.pos = pos
	return nil
}

// Embed writes the embedding rows of tokens into x (len(tokens) × Dim). Only the
// first stage can embed.
func (se *Session) Embed(x []float32, tokens []int32) error {
	st := se.st
	if !st.IsFirst() {
		return fmt.Errorf("stage [%d, %d) holds no embedding", st.first, st.last)
	}
	if len(x) != len(tokens)*st.cfg.Dim {
		return fmt.Errorf("%w: %d floats for %d tokens of width %d", ErrShape, len(x), len(tokens), st.cfg.Dim)
	}
	for _, t := range tokens {
		if t < 0 || int(t) >= st.cfg.VocabSize {
			return fmt.Errorf("%w: %d (vocabulary of %d)", ErrToken, t, st.cfg.VocabSize)
		}
	}
	st.be.Rows(x, st.embd, tokens)
	return nil
}

// Forward runs the rows of x (n × Dim, positions Pos()…Pos()+n-1) through the stage's
// layers, in place, and appends them to the KV cache.
func (se *Session) Forward(x []float32) error {
	d := se.st.cfg.Dim
	if len(x) == 0 || len(x)%d != 0 {
		return fmt.Errorf("%w: %d floats is not a whole number of rows of width %d", ErrShape, len(x), d)
	}
	n := len(x) / d
	if se.pos+n > se.maxLen {
		return fmt.Errorf("%w: %d positions + %d new > %d", ErrContextFull, se.pos, n, se.maxLen)
	}
	for off := 0; off < n; off += maxBatch {
		m := min(maxBatch, n-off)
		se.grow(m)
		chunk := x[off*d : (off+m)*d]
		for i := range se.st.layers {
			se.layer(i, chunk, m)
		}
		se.pos += m
	}
	return nil
}

// layer runs one transformer block over n rows at positions se.pos….
func (se *Session) layer(li int, x []float32, n int) {
	st := se.st
	be := st.be
	c := st.cfg
	ly := &st.layers[li]
	qDim, kvDim := c.Heads*c.HeadDim, c.KVHeads*c.HeadDim
	xb := se.xb[:n*c.Dim]
	q := se.q[:n*qDim]
	att := se.att[:n*qDim]
	kc := se.k[li][se.pos*kvDim : (se.pos+n)*kvDim]
	vc := se.v[li][se.pos*kvDim : (se.pos+n)*kvDim]

	// Attention: keys and values are written straight into the cache.
	be.RMSNorm(xb, x, ly.attnNorm, c.NormEps)
	be.MatMul(q, xb, n, ly.wq)
	be.MatMul(kc, xb, n, ly.wk)
	be.MatMul(vc, xb, n, ly.wv)
	if ly.bq != nil {
		be.Add(q, ly.bq)
	}
	if ly.bk != nil {
		be.Add(kc, ly.bk)
	}
	if ly.bv != nil {
		be.Add(vc, ly.bv)
	}
	rope := kernels.RoPE{Pos0: se.pos, InvFreq: st.invFreq, Neox: c.RopeNeox}
	be.RoPE(q, n, c.Heads, c.HeadDim, rope)
	be.RoPE(kc, n, c.KVHeads, c.HeadDim, rope)
	be.Attend(att, q, kernels.Attention{
		N: n, Pos0: se.pos,
		Heads: c.Heads, KVHeads: c.KVHeads, HeadDim: c.HeadDim,
		Scale: float32(1 / math.Sqrt(float64(c.HeadDim))),
		K:     se.k[li][:(se.pos+n)*kvDim],
		V:     se.v[li][:(se.pos+n)*kvDim],
	})
	out := se.xb2[:n*c.Dim]
	be.MatMul(out, att, n, ly.wo)
	be.Add(x, out)

	// Feed-forward.
	be.RMSNorm(xb, x, ly.ffnNorm, c.NormEps)
	if ly.router != nil {
		se.moe(ly, x, xb, n)
		return
	}
	hb, hb2 := se.hb[:n*c.FFN], se.hb2[:n*c.FFN]
	be.MatMul(hb, xb, n, ly.gate)
	be.MatMul(hb2, xb, n, ly.up)
	be.SwiGLU(hb, hb, hb2)
	be.MatMul(out, hb, n, ly.down)
	be.Add(x, out)
}

// moe routes each row to its top ExpertsUsed experts (softmax over the router's
// logits, renormalised over the chosen ones, as Mixtral does) and adds the weighted
// expert outputs to x. Rows are grouped by expert so each expert's weights are read
// once per batch however many rows chose it.
func (se *Session) moe(ly *layer, x, xb []float32, n int) {
	be := se.st.be
	c := se.st.cfg
	route := se.route[:n*c.Experts]
	be.MatMul(route, xb, n, ly.router)
	for e := range se.byExpert {
		se.byExpert[e] = se.byExpert[e][:0]
		se.weight[e] = se.weight[e][:0]
	}
	for r := 0; r < n; r++ {
		logits := route[r*c.Experts : (r+1)*c.Experts]
		top := topK(se.topIdx, logits)
		// Softmax over the chosen logits equals the full softmax renormalised
		// over them.
		mx := logits[top[0]]
		var sum float64
		for _, e := range top {
			sum += math.Exp(float64(logits[e] - mx))
		}
		for _, e := range top {
			se.byExpert[e] = append(se.byExpert[e], int32(r))
			se.weight[e] = append(se.weight[e], float32(math.Exp(float64(logits[e]-mx))/sum))
		}
	}
	for e, rows := range se.byExpert {
		m := len(rows)
		if m == 0 {
			continue
		}
		ex := ly.experts[e]
		g := se.gather[:m*c.Dim]
		for i, r := range rows {
			copy(g[i*c.Dim:(i+1)*c.Dim], xb[int(r)*c.Dim:(int(r)+1)*c.Dim])
		}
		hb, hb2 := se.hb[:m*c.FFN], se.hb2[:m*c.FFN]
		be.MatMul(hb, g, m, ex.gate)
		be.MatMul(hb2, g, m, ex.up)
		be.SwiGLU(hb, hb, hb2)
		out := se.xb2[:m*c.Dim]
		be.MatMul(out, hb, m, ex.down)
		for i, r := range rows {
			w := se.weight[e][i]
			dst := x[int(r)*c.Dim : (int(r)+1)*c.Dim]
			for j, o := range out[i*c.Dim : (i+1)*c.Dim] {
				dst[j] += w * o
			}
		}
	}
}

// topK fills idx with the indices of the len(idx) largest values, largest first;
// ties go to the lower index, as a stable sort would.
func topK(idx []int, v []float32) []int {
	k := len(idx)
	n := 0
	for i, x := range v {
		if n == k && x <= v[idx[k-1]] {
			continue
		}
		j := min(n, k-1)
		for j > 0 && v[idx[j-1]] < x {
			idx[j] = idx[j-1]
			j--
		}
		idx[j] = i
		if n < k {
			n++
		}
	}
	return idx[:n]
}

// Logits computes the output distribution's logits for the last row of x into dst
// (VocabSize floats). Only the last stage can.
func (se *Session) Logits(dst, x []float32) error {
	st := se.st
	c := st.cfg
	if !st.IsLast() {
		return fmt.Errorf("stage [%d, %d) holds no output head", st.first, st.last)
	}
	if len(x) < c.Dim || len(x)%c.Dim != 0 {
		return fmt.Errorf("%w: %d floats is not a whole number of rows of width %d", ErrShape, len(x), c.Dim)
	}
	if len(dst) != c.VocabSize {
		return fmt.Errorf("%w: logits buffer of %d for a vocabulary of %d", ErrShape, len(dst), c.VocabSize)
	}
	st.be.RMSNorm(se.norm, x[len(x)-c.Dim:], st.outNorm, c.NormEps)
	st.be.MatMul(dst, se.norm, 1, st.output)
	return nil
}
