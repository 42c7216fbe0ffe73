package opencl

import (
	"fmt"
	"unsafe"

	"github.com/imece/imece/kernels"
)

// matrix is a weight matrix. mem is its device copy in the stored block
// layout; when the device has no room for it (mem == 0) its products run on
// the CPU backend, which keeps only a reference to the (memory-mapped) data.
type matrix struct {
	cpu      kernels.Matrix
	mem      uintptr
	rowBytes int
}

func (m *matrix) Rows() int            { return m.cpu.Rows() }
func (m *matrix) Cols() int            { return m.cpu.Cols() }
func (m *matrix) DType() kernels.DType { return m.cpu.DType() }

// NewMatrix implements kernels.Backend: the weights are copied to the device
// once, as stored; the products dequantize them as they read them.
func (b *Backend) NewMatrix(dt kernels.DType, rows, cols int, data []byte) (kernels.Matrix, error) {
	cm, err := b.cpu.NewMatrix(dt, rows, cols, data) // validates the shape and length
	if err != nil {
		return nil, err
	}
	m := &matrix{cpu: cm, rowBytes: len(data) / rows}
	b.mu.Lock()
	defer b.mu.Unlock()
	if _, ok := b.matvec[dt]; !ok || b.broken != nil {
		b.warnOnce("type:"+dt.String(), "opencl: no device kernel for this weight type; its products run on the CPU", "dtype", dt)
		return m, nil
	}
	if uint64(len(data)) > b.dev.MaxAlloc {
		b.warnOnce("size", "opencl: a weight matrix is larger than the device's largest buffer; it stays on the CPU",
			"bytes", len(data), "max_alloc", b.dev.MaxAlloc)
		return m, nil
	}
	var code int32
	mem := b.cl.createBuffer(b.ctx, clMemReadOnly|clMemCopyHostPtr, uintptr(len(data)), unsafe.Pointer(&data[0]), &code)
	if code != clSuccess {
		b.warnOnce("alloc", "opencl: device memory is full; further weight matrices stay on the CPU",
			"err", clError("clCreateBuffer", code), "bytes", len(data))
		return m, nil
	}
	b.weights = append(b.weights, mem)
	m.mem = mem
	return m, nil
}

// warnOnce logs msg the first time key comes up. Called with b.mu held.
func (b *Backend) warnOnce(key, msg string, args ...any) {
	if !b.warned[key] {
		b.warned[key] = true
		b.log.Warn(msg, args...)
	}
}

// onDevice runs f with the queue to itself, unless the device failed before.
// When f fails the device is given up for good (logged once) and onDevice
// reports false: the caller computes on the CPU, because the interface has no
// error to return and the text must not change mid-generation.
func (b *Backend) onDevice(f func() error) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.broken != nil || b.closed {
		return false
	}
	if err := f(); err != nil {
		b.broken = err
		b.log.Warn("opencl: device failed; the CPU backend computes from now on", "device", b.dev.Name, "err", err)
		return false
	}
	return true
}

// scratch returns slot i's buffer, grown to at least size bytes.
func (b *Backend) scratch(i int, size uintptr) (uintptr, error) {
	s := &b.slots[i]
	if s.size >= size && s.mem != 0 {
		return s.mem, nil
	}
	if s.mem != 0 {
		b.cl.releaseMemObject(s.mem)
		*s = buffer{}
	}
	size = max(size, 256)
	var code int32
	mem := b.cl.createBuffer(b.ctx, clMemReadWrite, size, nil, &code)
	if code != clSuccess {
		return 0, clError(fmt.Sprintf("clCreateBuffer (%d bytes of scratch)", size), code)
	}
	*s = buffer{mem: mem, size: size}
	return mem, nil
}

// upload copies v into slot i. The write blocks: v is Go memory, which must
// not be read by the device after the call returns.
func (b *Backend) upload(i int, v []float32) (uintptr, error) {
	return b.uploadBytes(i, unsafe.Pointer(unsafe.SliceData(v)), uintptr(len(v))*4)
}

func (b *Backend) uploadBytes(i int, p unsafe.Pointer, size uintptr) (uintptr, error) {
	mem, err := b.scratch(i, size)
	if err != nil {
		return 0, err
	}
	if size > 0 {
		if code := b.cl.enqueueWriteBuffer(b.queue, mem, 1, 0, size, p, 0, 0, 0); code != clSuccess {
			return 0, clError("clEnqueueWriteBuffer", code)
		}
	}
	return mem, nil
}

// download copies len(out) floats from mem, waiting for the kernels before it.
func (b *Backend) download(mem uintptr, out []float32) error {
	if len(out) == 0 {
		return nil
	}
	if code := b.cl.enqueueReadBuffer(b.queue, mem, 1, 0, uintptr(len(out))*4, unsafe.Pointer(&out[0]), 0, 0, 0); code != clSuccess {
		return clError("clEnqueueReadBuffer", code)
	}
	return nil
}

// launch sets k's arguments (buffers as uintptr, int32, float32) and enqueues
// it over global work items in work-groups of local (nil: the driver's
// choice).
func (b *Backend) launch(k uintptr, global, local []uintptr, args ...any) error {
	for i, a := range args {
		var code int32
		switch v := a.(type) {
		case uintptr:
			code = b.cl.setKernelArg(k, uint32(i), unsafe.Sizeof(v), unsafe.Pointer(&v))
		case int32:
			code = b.cl.setKernelArg(k, uint32(i), 4, unsafe.Pointer(&v))
		case float32:
			code = b.cl.setKernelArg(k, uint32(i), 4, unsafe.Pointer(&v))
		default:
			return fmt.Errorf("opencl: kernel argument %d is a %T", i, a)
		}
		if code != clSuccess {
			return clError(fmt.Sprintf("clSetKernelArg %d", i), code)
		}
	}
	var lp *uintptr
	if local != nil {
		lp = &local[0]
	}
	if code := b.cl.enqueueNDRangeKernel(b.queue, k, uint32(len(global)), nil, &global[0], lp, 0, 0, 0); code != clSuccess {
		return clError("clEnqueueNDRangeKernel", code)
	}
	b.launches++
	return nil
}

func roundUp(n, m int) uintptr { return uintptr((n + m - 1) / m * m) }

// MatMul implements kernels.Backend: the matrix-vector kernel for decode and
// small batches, the tiled one for prefill. x goes to the device and dst comes
// back on every call.
func (b *Backend) MatMul(dst, x []float32, n int, w kernels.Matrix) {
	m := w.(*matrix)
	rows, cols := m.Rows(), m.Cols()
	if n <= 0 {
		return
	}
	if m.mem == 0 || len(x) < n*cols || len(dst) < n*rows || !b.onDevice(func() error {
		xb, err := b.upload(slotX, x[:n*cols])
		if err != nil {
			return err
		}
		db, err := b.scratch(slotDst, uintptr(n*rows)*4)
		if err != nil {
			return err
		}
		if n >= gemmMin && b.gemmOK {
			err = b.launch(b.gemm[m.DType()], []uintptr{roundUp(rows, tile), roundUp(n, tile)}, []uintptr{tile, tile},
				db, xb, m.mem, int32(rows), int32(cols), int32(m.rowBytes), int32(n))
		} else if b.rowVec {
			err = b.launch(b.rowvec[m.DType()], []uintptr{roundUp(rows, 16), uintptr(n)}, nil,
				db, xb, m.mem, int32(rows), int32(cols), int32(m.rowBytes))
		} else {
			err = b.launch(b.matvec[m.DType()], []uintptr{uintptr(rows * b.wg), uintptr(n)}, []uintptr{uintptr(b.wg), 1},
				db, xb, m.mem, int32(rows), int32(cols), int32(m.rowBytes))
		}
		if err != nil {
			return err
		}
		return b.download(db, dst[:n*rows])
	}) {
		b.cpu.MatMul(dst, x, n, m.cpu)
	}
}

// Rows implements kernels.Backend: the embedding lookup, dequantized on the
// device.
func (b *Backend) Rows(dst []float32, w kernels.Matrix, ids []int32) {
	m := w.(*matrix)
	cols := m.Cols()
	inRange := true
	for _, id := range ids {
		inRange = inRange && id >= 0 && int(id) < m.Rows()
	}
	if len(ids) == 0 {
		return
	}
	// An id out of range is the CPU backend's to report (it panics: a
	// programming error, as kernels.Backend documents).
	if m.mem == 0 || !inRange || len(dst) < len(ids)*cols || !b.onDevice(func() error {
		ib, err := b.uploadBytes(slotAux, unsafe.Pointer(&ids[0]), uintptr(len(ids))*4)
		if err != nil {
			return err
		}
		db, err := b.scratch(slotDst, uintptr(len(ids)*cols)*4)
		if err != nil {
			return err
		}
		if err := b.launch(b.rows[m.DType()], []uintptr{uintptr(cols), uintptr(len(ids))}, nil,
			db, m.mem, ib, int32(cols), int32(m.rowBytes)); err != nil {
			return err
		}
		return b.download(db, dst[:len(ids)*cols])
	}) {
		b.cpu.Rows(dst, m.cpu, ids)
	}
}

// RMSNorm implements kernels.Backend: one work-group per row.
func (b *Backend) RMSNorm(dst, x, gain []float32, eps float32) {
	w := len(gain)
	if w == 0 || len(x)%w != 0 || len(dst) < len(x) || len(x) == 0 || !b.onDevice(func() error {
		xb, err := b.upload(slotX, x)
		if err != nil {
			return err
		}
		gb, err := b.upload(slotAux, gain)
		if err != nil {
			return err
		}
		db, err := b.scratch(slotDst, uintptr(len(x))*4)
		if err != nil {
			return err
		}
		if err := b.launch(b.kRMS, []uintptr{uintptr(len(x) / w * b.wg)}, []uintptr{uintptr(b.wg)},
			db, xb, gb, int32(w), eps); err != nil {
			return err
		}
		return b.download(db, dst[:len(x)])
	}) {
		b.cpu.RMSNorm(dst, x, gain, eps)
	}
}

// RoPE implements kernels.Backend: one work item per rotated pair.
func (b *Backend) RoPE(x []float32, n, heads, headDim int, r kernels.RoPE) {
	half := len(r.InvFreq)
	if n <= 0 || heads <= 0 || half == 0 {
		return
	}
	size := n * heads * headDim
	if 2*half > headDim || len(x) < size || !b.onDevice(func() error {
		xb, err := b.upload(slotX, x[:size])
		if err != nil {
			return err
		}
		fb, err := b.upload(slotAux, r.InvFreq)
		if err != nil {
			return err
		}
		neox := int32(0)
		if r.Neox {
			neox = 1
		}
		if err := b.launch(b.kRoPE, []uintptr{uintptr(half), uintptr(n * heads)}, nil,
			xb, fb, int32(heads), int32(headDim), int32(half), int32(r.Pos0), neox); err != nil {
			return err
		}
		return b.download(xb, x[:size])
	}) {
		b.cpu.RoPE(x, n, heads, headDim, r)
	}
}

// Attend implements kernels.Backend: one work-group per (query, head). The
// cache comes from the host on every call (kernels.Backend keeps it there);
// doc.go says what removes that copy.
func (b *Backend) Attend(dst, q []float32, a kernels.Attention) {
	if a.N <= 0 {
		return
	}
	ctx := a.Pos0 + a.N
	kv := ctx * a.KVHeads * a.HeadDim
	qn := a.N * a.Heads * a.HeadDim
	valid := a.KVHeads > 0 && a.Heads%a.KVHeads == 0 && a.HeadDim > 0 && a.Pos0 >= 0 &&
		len(a.K) >= kv && len(a.V) >= kv && len(q) >= qn && len(dst) >= qn
	if !valid || !b.onDevice(func() error {
		qb, err := b.upload(slotX, q[:qn])
		if err != nil {
			return err
		}
		kb, err := b.upload(slotK, a.K[:kv])
		if err != nil {
			return err
		}
		vb, err := b.upload(slotV, a.V[:kv])
		if err != nil {
			return err
		}
		db, err := b.scratch(slotDst, uintptr(qn)*4)
		if err != nil {
			return err
		}
		chunk := max(1, min(a.N, attendScratch/(a.Heads*ctx)))
		sb, err := b.scratch(slotScores, uintptr(chunk*a.Heads*ctx)*4)
		if err != nil {
			return err
		}
		for q0 := 0; q0 < a.N; q0 += chunk {
			groups := min(chunk, a.N-q0) * a.Heads
			if err := b.launch(b.kAttend, []uintptr{uintptr(groups * b.wg)}, []uintptr{uintptr(b.wg)},
				db, sb, qb, kb, vb, int32(q0), int32(a.Pos0), int32(a.Heads), int32(a.KVHeads),
				int32(a.HeadDim), a.Scale, int32(ctx)); err != nil {
				return err
			}
		}
		return b.download(db, dst[:qn])
	}) {
		b.cpu.Attend(dst, q, a)
	}
}

// SwiGLU implements kernels.Backend.
func (b *Backend) SwiGLU(dst, gate, up []float32) {
	n := len(gate)
	if n == 0 || len(up) < n || len(dst) < n || !b.onDevice(func() error {
		gb, err := b.upload(slotX, gate)
		if err != nil {
			return err
		}
		ub, err := b.upload(slotAux, up[:n])
		if err != nil {
			return err
		}
		db, err := b.scratch(slotDst, uintptr(n)*4)
		if err != nil {
			return err
		}
		if err := b.launch(b.kSwiGLU, []uintptr{uintptr(n)}, nil, db, gb, ub); err != nil {
			return err
		}
		return b.download(db, dst[:n])
	}) {
		b.cpu.SwiGLU(dst, gate, up)
	}
}

// Add implements kernels.Backend.
func (b *Backend) Add(dst, x []float32) {
	if len(x) == 0 || len(dst)%len(x) != 0 || len(dst) == 0 || !b.onDevice(func() error {
		db, err := b.upload(slotDst, dst)
		if err != nil {
			return err
		}
		xb, err := b.upload(slotAux, x)
		if err != nil {
			return err
		}
		if err := b.launch(b.kAdd, []uintptr{uintptr(len(dst))}, nil, db, xb, int32(len(x))); err != nil {
			return err
		}
		return b.download(db, dst)
	}) {
		b.cpu.Add(dst, x)
	}
}
