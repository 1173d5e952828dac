package half

import "github.com/golora/golora/internal/cpu"

// MatVecBF16 writes y[r] = Σₖ x[k]·W[r][k] for r < len(y), where W holds
// len(y) rows of len(x) BF16 values (w[r·len(x)+k]): a matrix-vector
// product with the matrix kept 16-bit, each value widened (exactly) as it is
// read. It reads w once, four rows at a time, and does not allocate.
//
// The order of the sum is fixed, so the result is the same bits at every
// kernel level (AVX-512, AVX2, pure Go): the first len(x) &^ 15 products go
// to 16 float32 lanes, product k to lane k mod 16, each product rounded to
// float32 and then added (no fused multiply-add); the lanes are folded in
// halves (lane i plus lane i+8, then i+4, i+2, i+1), and the remaining
// len(x) mod 16 products are added to that sum one by one.
func MatVecBF16(y, x []float32, w []uint16) { matVecAt(cpu.Best(), false, y, x, w) }

// MatVecF16 is MatVecBF16 with W in F16 (IEEE binary16). The vector code
// converts with F16C, which quiets a signalling NaN where F16ToFloat32 keeps
// it: a NaN in W gives a NaN either way, with payload bits that may differ.
func MatVecF16(y, x []float32, w []uint16) { matVecAt(cpu.Best(), true, y, x, w) }

// WidenBF16 writes the float32 values of the BF16 values src into
// dst[:len(src)], exactly, with DecodeBF16's vector code.
func WidenBF16(dst []float32, src []uint16) { widenAt(cpu.Best(), false, dst[:len(src)], src) }

// WidenF16 writes the float32 values of the F16 values src into
// dst[:len(src)], exactly, with DecodeF16's vector code.
func WidenF16(dst []float32, src []uint16) { widenAt(cpu.Best(), true, dst[:len(src)], src) }

// FiniteBF16 reports whether every BF16 value of src is finite (no NaN or
// ±Inf).
func FiniteBF16(src []uint16) bool { return finite16(src, 0x7f80) }

// FiniteF16 reports whether every F16 value of src is finite.
func FiniteF16(src []uint16) bool { return finite16(src, 0x7c00) }

// finite16 reports whether no value of src has all its exponent bits (the
// mask exp, a run of ones ending below the sign bit) set: adding the lowest
// exponent bit to the masked value carries into the sign bit exactly then.
func finite16(src []uint16, exp uint16) bool {
	carry := exp & -exp
	var acc uint16
	for _, v := range src {
		acc |= v&exp + carry
	}
	return acc&0x8000 == 0
}

// widen16 returns the float32 value of the BF16 or (f16) F16 bits h.
func widen16(f16 bool, h uint16) float32 {
	if f16 {
		return F16ToFloat32(h)
	}
	return BF16ToFloat32(h)
}

// dotRow is one row of MatVecBF16 (or F16) in pure Go: the definition the
// vector kernels reproduce.
func dotRow(f16 bool, x []float32, w []uint16) float32 {
	w = w[:len(x)]
	n := len(x) &^ 15
	var s [16]float32
	for k := 0; k < n; k += 16 {
		for i := range s {
			// The conversion rounds the product, so that the compiler
			// cannot fuse it with the addition.
			s[i] += float32(x[k+i] * widen16(f16, w[k+i]))
		}
	}
	for h := 8; h >= 1; h /= 2 {
		for i := range h {
			s[i] += s[i+h]
		}
	}
	sum := s[0]
	for k := n; k < len(x); k++ {
		sum += float32(x[k] * widen16(f16, w[k]))
	}
	return sum
}

// matVecGeneric is matVecAt in pure Go.
func matVecGeneric(f16 bool, y, x []float32, w []uint16) {
	cols := len(x)
	for r := range y {
		y[r] = dotRow(f16, x, w[r*cols:(r+1)*cols])
	}
}
