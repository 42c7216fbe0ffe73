package pipeline

import (
	"bytes"
	"fmt"
	"math"
	"math/rand/v2"
	"strings"

	"github.com/imece/imece/kernels"
	"github.com/imece/imece/pipeline/model"
)

// Fault makes a stage server compute wrongly on purpose while claiming the model
// it was given: the dishonest or broken volunteer that audits and canaries must
// catch. It exists for tests and drills; a node never sets it on its own.
type Fault struct {
	// Model, when set, is what the stage computes with instead of the model it
	// claims: the same shapes, other weights (SkipLayer, Requantize). It computes
	// audits with it too, as a node that loaded those weights would.
	Model *model.Model
	// Corrupt, when set, rewrites the rows a Forward produced (n rows of the
	// model's width, from position pos) before they leave the stage: the hidden
	// states sent on, or, on the last stage, those the logits are taken from.
	Corrupt func(rows []float32, pos int)
}

// WithFault makes the server faulty: see Fault.
func WithFault(f Fault) ServerOption {
	return func(c *serverConfig) error { c.fault = &f; return nil }
}

// RandomActivations is a Fault.Corrupt that replaces every row by Gaussian noise
// of the row's own root mean square: a node that returns plausible-looking
// garbage instead of computing. seed makes it reproducible.
func RandomActivations(seed uint64, width int) func(rows []float32, pos int) {
	return func(rows []float32, pos int) {
		r := rand.New(rand.NewPCG(seed, uint64(pos)))
		if width <= 0 {
			width = max(len(rows), 1) // one row: never loop in place
		}
		for off := 0; off+width <= len(rows); off += width {
			row := rows[off : off+width]
			var ss float64
			for _, v := range row {
				ss += float64(v) * float64(v)
			}
			rms := math.Sqrt(ss / float64(width))
			for i := range row {
				row[i] = float32(r.NormFloat64() * rms)
			}
		}
	}
}

// SkipLayer returns a copy of m in which layer is an identity: its attention
// output and feed-forward down projections are zero, so the layer adds nothing
// to the residual stream, exactly as a node that skipped it to save time.
func SkipLayer(m *model.Model, layer int) (*model.Model, error) {
	if layer < 0 || layer >= m.Config.Layers {
		return nil, fmt.Errorf("skip layer %d of %d", layer, m.Config.Layers)
	}
	zero := map[string]bool{
		model.LayerTensor(layer, "attn_output.weight"): true,
		model.LayerTensor(layer, "ffn_down.weight"):    true,
	}
	return rewrite(m, func(t model.Tensor) (model.Tensor, error) {
		if zero[t.Name] {
			t.Data = make([]byte, len(t.Data)) // zero in every dtype, quantized blocks included
		}
		return t, nil
	})
}

// Requantize returns a copy of m whose weight matrices went through dt (Q4_0,
// say) while the model keeps its shapes: a node that loaded cheaper weights than
// the ones it claims. A matrix whose rows are whole blocks of dt is stored in dt;
// any other (stories260K's feed-forward width, 172, is not a multiple of 32) is
// quantized and dequantized in place, block by block over its flat contents,
// which costs the same precision. Norms, 1-D tensors, stay as they are.
func Requantize(m *model.Model, dt kernels.DType) (*model.Model, error) {
	bs := dt.BlockSize()
	return rewrite(m, func(t model.Tensor) (model.Tensor, error) {
		if len(t.Shape) < 2 || strings.Contains(t.Name, "norm") {
			return t, nil
		}
		vals := make([]float32, t.Elements())
		if err := kernels.Dequantize(vals, t.DType, t.Data); err != nil {
			return t, fmt.Errorf("%s: %w", t.Name, err)
		}
		n := len(vals) / bs * bs
		q, err := dt.RowBytes(int64(n))
		if err != nil {
			return t, err
		}
		buf := make([]byte, q)
		if err := kernels.Quantize(buf, dt, vals[:n]); err != nil {
			return t, fmt.Errorf("%s: %w", t.Name, err)
		}
		if t.Cols()%bs == 0 {
			t.DType, t.Data = dt, buf
			return t, nil
		}
		if err := kernels.Dequantize(vals[:n], dt, buf); err != nil {
			return t, err
		}
		out, err := t.DType.RowBytes(int64(len(vals)))
		if err != nil {
			return t, err
		}
		t.Data = make([]byte, out)
		return t, kernels.Quantize(t.Data, t.DType, vals)
	})
}

// rewrite builds a model from m's metadata and its tensors passed through f.
func rewrite(m *model.Model, f func(model.Tensor) (model.Tensor, error)) (*model.Model, error) {
	srcs := make([]model.TensorSource, 0, len(m.Tensors))
	for _, t := range m.Tensors {
		t.Shape = append([]int64(nil), t.Shape...)
		nt, err := f(t)
		if err != nil {
			return nil, err
		}
		srcs = append(srcs, model.SourceOf(nt))
	}
	var buf bytes.Buffer
	if err := model.WriteGGUF(&buf, m.Meta, srcs...); err != nil {
		return nil, err
	}
	return model.FromGGUF(buf.Bytes())
}
