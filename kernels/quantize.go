package kernels

import (
	"encoding/binary"
	"fmt"
	"math"
)

// Quantize encodes src, a whole number of blocks of dt, into dst, which must be
// exactly dt.RowBytes(len(src)) long. The block quantizers follow llama.cpp's
// reference ones (quantize_row_*_ref) operation for operation, in float32, so a
// synthesized model matches what llama.cpp's tools would write up to the rounding of
// fused multiply-adds a C compiler may contract.
func Quantize(dst []byte, dt DType, src []float32) error {
	want, err := dt.RowBytes(int64(len(src)))
	if err != nil {
		return fmt.Errorf("quantize: %w", err)
	}
	if int64(len(dst)) != want {
		return fmt.Errorf("quantize %s: %d values need %d bytes, destination has %d: %w",
			dt, len(src), want, len(dst), ErrLength)
	}
	switch dt {
	case F32:
		for i, v := range src {
			binary.LittleEndian.PutUint32(dst[4*i:], math.Float32bits(v))
		}
	case F16:
		for i, v := range src {
			binary.LittleEndian.PutUint16(dst[2*i:], F32ToF16(v))
		}
	case BF16:
		for i, v := range src {
			binary.LittleEndian.PutUint16(dst[2*i:], F32ToBF16(v))
		}
	case Q8_0:
		for b := 0; b < len(src)/qk; b++ {
			quantQ8_0(dst[b*q8_0Len:(b+1)*q8_0Len], src[b*qk:(b+1)*qk])
		}
	case Q4_0:
		for b := 0; b < len(src)/qk; b++ {
			quantQ4_0(dst[b*q4_0Len:(b+1)*q4_0Len], src[b*qk:(b+1)*qk])
		}
	case Q4_K:
		for b := 0; b < len(src)/qkK; b++ {
			quantQ4K(dst[b*q4KLen:(b+1)*q4KLen], src[b*qkK:(b+1)*qkK])
		}
	case Q6_K:
		for b := 0; b < len(src)/qkK; b++ {
			quantQ6K(dst[b*q6KLen:(b+1)*q6KLen], src[b*qkK:(b+1)*qkK])
		}
	default:
		return fmt.Errorf("quantize: unsupported tensor type %s", dt)
	}
	return nil
}

// nearestInt rounds half to even, as ggml's nearest_int (the 1.5·2²³ trick) does for
// every argument it is used with (|x| < 2²²).
func nearestInt(x float32) int32 {
	return int32(math.RoundToEven(float64(x)))
}

func putHalf(b []byte, f float32) { binary.LittleEndian.PutUint16(b, F32ToF16(f)) }

func abs32(x float32) float32 { return math.Float32frombits(math.Float32bits(x) &^ (1 << 31)) }

// quantQ8_0 is quantize_row_q8_0_ref: d = max|x|/127, q = round(x/d) away from zero.
func quantQ8_0(y []byte, x []float32) {
	var amax float32
	for _, v := range x {
		amax = max(amax, abs32(v))
	}
	d := amax / 127
	var id float32
	if d != 0 {
		id = 1 / d
	}
	putHalf(y, d)
	for j, v := range x {
		y[2+j] = byte(int8(math.Round(float64(v * id))))
	}
}

// quantQ4_0 is quantize_row_q4_0_ref: the value of largest magnitude maps to −8.
func quantQ4_0(y []byte, x []float32) {
	var amax, mx float32
	for _, v := range x {
		if amax < abs32(v) {
			amax, mx = abs32(v), v
		}
	}
	d := mx / -8
	var id float32
	if d != 0 {
		id = 1 / d
	}
	putHalf(y, d)
	for j := range 16 {
		x0 := x[j] * id
		x1 := x[16+j] * id
		xi0 := min(15, int8(float32(x0+8.5)))
		xi1 := min(15, int8(float32(x1+8.5)))
		y[2+j] = byte(xi0) | byte(xi1)<<4
	}
}

// makeQKX2Quants is make_qkx2_quants: an asymmetric nmax-level quantization of x with
// weights, searching nstep scales around the min-max one for the lowest weighted
// error. It returns the scale and stores −min in *theMin.
func makeQKX2Quants(nmax int32, x, weights []float32, L, Laux []uint8, theMin *float32,
	rmin, rdelta float32, nstep int) float32 {
	n := len(x)
	mn, mx := x[0], x[0]
	sumW := weights[0]
	sumX := sumW * x[0]
	for i := 1; i < n; i++ {
		mn = min(mn, x[i])
		mx = max(mx, x[i])
		w := weights[i]
		sumW += w
		sumX += float32(w * x[i])
	}
	if mn > 0 {
		mn = 0
	}
	if mx == mn {
		for i := range n {
			L[i] = 0
		}
		*theMin = -mn
		return 0
	}
	iscale := float32(nmax) / (mx - mn)
	scale := 1 / iscale
	var bestError float32
	for i := range n {
		l := nearestInt(iscale * (x[i] - mn))
		L[i] = uint8(max(0, min(nmax, l)))
		diff := float32(scale*float32(L[i])) + mn - x[i]
		diff = diff * diff
		bestError += float32(weights[i] * diff)
	}
	if nstep < 1 {
		*theMin = -mn
		return scale
	}
	for is := 0; is <= nstep; is++ {
		iscale = (float32(rmin+float32(rdelta*float32(is))) + float32(nmax)) / (mx - mn)
		var sumL, sumL2, sumXL float32
		for i := range n {
			l := nearestInt(iscale * (x[i] - mn))
			l = max(0, min(nmax, l))
			Laux[i] = uint8(l)
			w := weights[i]
			fl := float32(l)
			sumL += float32(w * fl)
			sumL2 += float32(float32(w*fl) * fl)
			sumXL += float32(float32(w*fl) * x[i])
		}
		D := float32(sumW*sumL2) - float32(sumL*sumL)
		if D > 0 {
			thisScale := (float32(sumW*sumXL) - float32(sumX*sumL)) / D
			thisMin := (float32(sumL2*sumX) - float32(sumL*sumXL)) / D
			if thisMin > 0 {
				thisMin = 0
				thisScale = sumXL / sumL2
			}
			var curError float32
			for i := range n {
				diff := float32(thisScale*float32(Laux[i])) + thisMin - x[i]
				diff = diff * diff
				curError += float32(weights[i] * diff)
			}
			if curError < bestError {
				copy(L[:n], Laux[:n])
				bestError = curError
				scale = thisScale
				mn = thisMin
			}
		}
	}
	*theMin = -mn
	return scale
}

// quantQ4K is quantize_row_q4_K_ref: eight sub-blocks of 32 quantized with
// make_qkx2_quants, their scales and mins requantized to 6 bits against the block's
// largest.
func quantQ4K(y []byte, x []float32) {
	var (
		L       [qkK]uint8
		Laux    [32]uint8
		weights [32]float32
		mins    [8]float32
		scales  [8]float32
	)
	var maxScale, maxMin float32
	for j := range 8 {
		xs := x[32*j : 32*j+32]
		var sumX2 float32
		for _, v := range xs {
			sumX2 += float32(v * v)
		}
		avX := float32(math.Sqrt(float64(sumX2 / 32)))
		for l, v := range xs {
			weights[l] = avX + abs32(v)
		}
		scales[j] = makeQKX2Quants(15, xs, weights[:], L[32*j:32*j+32], Laux[:], &mins[j], -1, 0.1, 20)
		maxScale = max(maxScale, scales[j])
		maxMin = max(maxMin, mins[j])
	}
	var invScale, invMin float32
	if maxScale > 0 {
		invScale = 63 / maxScale
	}
	if maxMin > 0 {
		invMin = 63 / maxMin
	}
	sc := y[4:16]
	for j := range 8 {
		ls := min(63, uint8(nearestInt(invScale*scales[j])))
		lm := min(63, uint8(nearestInt(invMin*mins[j])))
		if j < 4 {
			sc[j] = ls
			sc[j+4] = lm
		} else {
			sc[j+4] = ls&0xf | (lm&0xf)<<4
			sc[j-4] |= (ls >> 4) << 6
			sc[j] |= (lm >> 4) << 6
		}
	}
	putHalf(y[0:], maxScale/63)
	putHalf(y[2:], maxMin/63)
	dAll, dminAll := halfAt(y, 0), halfAt(y, 2)
	for j := range 8 {
		s, m := scaleMinK4(j, sc)
		d := dAll * float32(s)
		if d == 0 {
			continue
		}
		dm := dminAll * float32(m)
		for ii := range 32 {
			l := nearestInt((x[32*j+ii] + dm) / d)
			L[32*j+ii] = uint8(max(0, min(15, l)))
		}
	}
	q := y[16:144]
	for j := 0; j < qkK; j += 64 {
		for l := range 32 {
			q[l] = L[j+l] | L[j+l+32]<<4
		}
		q = q[32:]
	}
}

// makeQXQuants is make_qx_quants with rmse_type 1 and no importance weights (the
// only form quantize_row_q6_K_ref uses): a symmetric quantization to [−nmax, nmax−1]
// whose scale is refined over 18 candidates by weighted least squares.
func makeQXQuants(nmax int32, x []float32, L []int8) float32 {
	var mx, amax float32
	for _, v := range x {
		if ax := abs32(v); ax > amax {
			amax, mx = ax, v
		}
	}
	if amax < 1e-15 {
		for i := range x {
			L[i] = 0
		}
		return 0
	}
	fn := float32(nmax)
	iscale := -fn / mx
	var sumLX, sumL2 float32
	for i, v := range x {
		l := nearestInt(iscale * v)
		l = max(-nmax, min(nmax-1, l))
		L[i] = int8(l + nmax)
		w := float32(v * v)
		fl := float32(l)
		sumLX += float32(float32(w*v) * fl)
		sumL2 += float32(float32(w*fl) * fl)
	}
	var scale float32
	if sumL2 != 0 {
		scale = sumLX / sumL2
	}
	best := scale * sumLX
	for is := -9; is <= 9; is++ {
		if is == 0 {
			continue
		}
		iscale = -(fn + float32(0.1*float32(is))) / mx
		sumLX, sumL2 = 0, 0
		for _, v := range x {
			l := nearestInt(iscale * v)
			l = max(-nmax, min(nmax-1, l))
			w := float32(v * v)
			fl := float32(l)
			sumLX += float32(float32(w*v) * fl)
			sumL2 += float32(float32(w*fl) * fl)
		}
		if sumL2 > 0 && float32(sumLX*sumLX) > float32(best*sumL2) {
			for i, v := range x {
				l := nearestInt(iscale * v)
				L[i] = int8(nmax + max(-nmax, min(nmax-1, l)))
			}
			scale = sumLX / sumL2
			best = scale * sumLX
		}
	}
	return scale
}

// quantQ6K is quantize_row_q6_K_ref: sixteen sub-blocks of 16 with int8 scales
// against one f16 d, values stored as 4+2 bits offset by 32.
func quantQ6K(y []byte, x []float32) {
	var (
		L      [qkK]int8
		scales [16]float32
	)
	var maxScale, maxAbsScale float32
	for ib := range 16 {
		s := makeQXQuants(32, x[16*ib:16*ib+16], L[16*ib:16*ib+16])
		scales[ib] = s
		if abs32(s) > maxAbsScale {
			maxAbsScale, maxScale = abs32(s), s
		}
	}
	if maxAbsScale < 1e-15 {
		clear(y[:q6KLen])
		return
	}
	iscale := -128 / maxScale
	putHalf(y[208:], 1/iscale)
	d0 := halfAt(y, 208)
	sc := y[192:208]
	for ib := range 16 {
		sc[ib] = byte(int8(min(127, nearestInt(iscale*scales[ib]))))
	}
	for j := range 16 {
		d := d0 * float32(int8(sc[j]))
		if d == 0 {
			continue
		}
		for ii := range 16 {
			l := nearestInt(x[16*j+ii] / d)
			L[16*j+ii] = int8(max(-32, min(31, l)) + 32)
		}
	}
	ql := y[0:128]
	qh := y[128:192]
	for j := 0; j < qkK; j += 128 {
		for l := range 32 {
			q1 := uint8(L[j+l]) & 0xf
			q2 := uint8(L[j+l+32]) & 0xf
			q3 := uint8(L[j+l+64]) & 0xf
			q4 := uint8(L[j+l+96]) & 0xf
			ql[l] = q1 | q3<<4
			ql[l+32] = q2 | q4<<4
			qh[l] = uint8(L[j+l])>>4 | (uint8(L[j+l+32])>>4)<<2 | (uint8(L[j+l+64])>>4)<<4 | (uint8(L[j+l+96])>>4)<<6
		}
		ql = ql[64:]
		qh = qh[32:]
	}
}
