//go:build goexperiment.simd && amd64

package kernels

import "simd/archsimd"

// expUseAVX512 selects the AVX-512 exponential; it is set once at start-up
// from the CPU features and never changes.
var expUseAVX512 = archsimd.X86.AVX512()

// expShifted writes e^(x[i] − m) into dst[i] for every i and returns their
// sum; m must be at least max(x), so every exponent is ≤ 0. dst may be x.
// Exponents below −87 are raised to −87: their results, under 1.6e-38 (the
// bottom of float32's normal range), are noise next to the maximum's 1.
// Each result is within about one ulp of the exact value.
func expShifted(dst, x []float32, m float32) float64 {
	if !expUseAVX512 || len(x) < 16 {
		return expShiftedScalar(dst, x, m)
	}
	return expShiftedAVX512(dst, x, m)
}

// expShiftedAVX512 is expNear0's method on 16 lanes: the range reduction
// uses fused multiply-adds (exact for k·ln2Hi) and VSCALEFPS applies 2^k.
// Sums are accumulated in float64 lanes.
func expShiftedAVX512(dst, x []float32, m float32) float64 {
	dst = dst[:len(x)]
	var (
		shift  = archsimd.BroadcastFloat32x16(m)
		floor  = archsimd.BroadcastFloat32x16(-87)
		vLog2e = archsimd.BroadcastFloat32x16(log2e)
		vNegHi = archsimd.BroadcastFloat32x16(-ln2Hi)
		vNegLo = archsimd.BroadcastFloat32x16(-ln2Lo)
		one    = archsimd.BroadcastFloat32x16(1)
		half   = archsimd.BroadcastFloat32x16(0.5)
		v3     = archsimd.BroadcastFloat32x16(c3)
		v4     = archsimd.BroadcastFloat32x16(c4)
		v5     = archsimd.BroadcastFloat32x16(c5)
		v6     = archsimd.BroadcastFloat32x16(c6)
		accLo  archsimd.Float64x8
		accHi  archsimd.Float64x8
	)
	i := 0
	for ; i+16 <= len(x); i += 16 {
		y := archsimd.LoadFloat32x16Slice(x[i:]).Sub(shift).Max(floor)
		k := y.Mul(vLog2e).RoundToEvenScaled(0)
		r := k.MulAdd(vNegHi, y)
		r = k.MulAdd(vNegLo, r)
		r2 := r.Mul(r)
		// (1 + r) + r²·((½ + c3·r) + r²·((c4 + c5·r) + r²·c6))
		inner := v6.MulAdd(r2, v5.MulAdd(r, v4))
		mid := inner.MulAdd(r2, v3.MulAdd(r, half))
		p := mid.MulAdd(r2, r.Add(one))
		e := p.Scale(k)
		e.StoreSlice(dst[i:])
		accLo = accLo.Add(e.GetLo().ConvertToFloat64())
		accHi = accHi.Add(e.GetHi().ConvertToFloat64())
	}
	var lanes [8]float64
	accLo.Add(accHi).Store(&lanes)
	// The scalar code that follows (Go's float32 arithmetic is SSE) would
	// otherwise pay a false dependency on the dirty upper halves of the
	// vector registers on every instruction: several times slower.
	archsimd.ClearAVXUpperBits()
	sum := expShiftedScalar(dst[i:], x[i:], m)
	for _, v := range lanes {
		sum += v
	}
	return sum
}
