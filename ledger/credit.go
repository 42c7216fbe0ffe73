package ledger

import (
	"math"
)

// The trust formulas (doc.go, "Trust"), written once like the credit formulas:
// integers only, flooring, saturating.

// Forwards is how many forward passes a receipt's window is taken to hold: one
// per generated token and one for the prompt. A decode step reads the hop's
// weights once per forward, so this counts the weight reads.
func Forwards(e *Earn) uint64 { return uint64(e.Tokens) + 1 }

// HopWeightBytes is what one forward of layers [first, last) reads of the
// weights: the stored bytes of their matrices, the output head's for the last
// stage. It is 0 for an impossible range.
func HopWeightBytes(c Cost, first, last int) uint64 {
	if !c.inRange(first, last) {
		return 0
	}
	var n uint64
	add := func(m Matrices) {
		for _, tb := range m.Bytes {
			n = satAdd(n, tb.Bytes)
		}
	}
	for _, m := range c.PerLayer[first:last] {
		add(m)
	}
	if last == c.Layers {
		add(c.Head)
	}
	return n
}

// WorkMicros is how long hardware with the figures mflops (MFLOP/s) and mbps
// (MB/s) takes for a receipt's work, in microseconds, rounded up:
//
//	⌈FLOPs / mflops⌉ + forwards · ⌈weight_bytes / mbps⌉
//
// the matrix work at the claimed matmul rate plus one read of the hop's weights
// per forward at the claimed bandwidth. Both terms, not the larger: it is a
// generous estimate, so that an honest server is never rated below its claim.
func WorkMicros(c Cost, e *Earn, mflops, mbps uint64) uint64 {
	if mflops == 0 || mbps == 0 {
		return 0
	}
	compute := ceilDiv(e.FLOPs, mflops)
	read := ceilDiv(HopWeightBytes(c, int(e.First), int(e.Last)), mbps)
	return satAdd(compute, satMul(Forwards(e), read))
}

// ImpliedMultiplier is the multiplier a client's observation supports (milli):
// the claimed multiplier scaled by how much of the claimed speed the client saw,
//
//	implied = claimed · work / (observed − forwards · overhead)
//
// capped at the claim. The overhead allowance is subtracted from the
// observation, not added to the work, so that it cannot lift a slow server's
// rating: a hop that took no longer than its overhead says nothing against the
// claim (tiny models), and an unobserved hop (observed 0) neither.
func ImpliedMultiplier(claimed uint32, work, observed, forwards, overhead uint64) uint32 {
	allowed := satMul(forwards, overhead)
	if observed == 0 || observed <= allowed {
		return claimed
	}
	m := mulDiv(uint64(claimed), work, observed-allowed)
	return uint32(min(m, uint64(claimed)))
}

// ReliabilityFactor is the reliability factor (milli) of a node whose audits in
// the window came from pass auditors whose latest verdict passed and fail whose
// latest failed:
//
//	R = 1000 · (k + pass) / (k + pass + F · fail)
//
// a Laplace-smoothed pass rate with k prior passes and each failing auditor
// weighing F. No audits is 1000; one failure and nothing else, k/(k+F).
func ReliabilityFactor(t Trust, pass, fail uint64) uint32 {
	num := satAdd(uint64(t.ReliabilityPrior), pass)
	den := satAdd(num, satMul(uint64(t.FailureWeight), fail))
	if den == 0 {
		return 1000
	}
	return uint32(mulDiv(1000, num, den))
}

// QuarantineMillis is how long a hardware claim's change quarantines a node: Q
// for a new device plus Q per tier of the jump (up or down), 0 for a re-measure
// of the same device in the same tier.
func QuarantineMillis(t Trust, newDevice bool, tierJump int) int64 {
	units := int64(tierJump)
	if units < 0 {
		units = -units
	}
	if newDevice {
		units++
	}
	q := t.QuarantineMillis
	if units > 0 && q > math.MaxInt64/units {
		return math.MaxInt64
	}
	return units * q
}

// ClampClaim is the multiplier a hardware claim may earn at: its multiplier
// within its tier's interval of the tier table, [tier's, next tier's] (the top
// tier's exactly for the last), so a claim cannot name one tier and the
// multiplier of another.
func ClampClaim(g *Genesis, h *Hardware) uint32 {
	i := int(h.Tier)
	if i >= len(g.Tiers) {
		return g.Tiers[0].Multiplier
	}
	lo, hi := g.Tiers[i].Multiplier, g.Tiers[i].Multiplier
	if i+1 < len(g.Tiers) {
		hi = g.Tiers[i+1].Multiplier
	}
	return min(max(h.Multiplier, lo), hi)
}

func ceilDiv(a, b uint64) uint64 {
	if b == 0 {
		return 0
	}
	q := a / b
	if a%b != 0 {
		q++
	}
	return q
}
