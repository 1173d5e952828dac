// Package half converts between float32 and the 16-bit floating-point
// formats model files use: IEEE 754 binary16 (F16) and bfloat16 (BF16), and
// multiplies a vector by a matrix held in either (MatVecBF16, MatVecF16).
package half

import (
	"encoding/binary"
	"math"

	"github.com/golora/golora/internal/cpu"
)

// Float32ToF16 returns the IEEE 754 half-precision value nearest to f, ties to
// even. Values beyond the half range become ±Inf, values below half the
// smallest subnormal become ±0, and NaN stays NaN (quiet, with the top bits of
// its payload kept).
func Float32ToF16(f float32) uint16 {
	bits := math.Float32bits(f)
	sign := uint16(bits>>16) & 0x8000
	exp := int(bits>>23) & 0xff
	mant := bits & 0x7fffff

	if exp == 0xff {
		if mant == 0 {
			return sign | 0x7c00
		}
		return sign | 0x7c00 | 0x0200 | uint16(mant>>13)
	}
	// e is the half-precision biased exponent of a normal result.
	e := exp - 127 + 15
	if e >= 0x1f {
		return sign | 0x7c00
	}
	if e <= 0 {
		// Subnormal half: the value is q·2⁻²⁴ where q = m·2^(exp-126) and m
		// is the 24-bit significand with its implicit leading one.
		shift := uint(126 - exp)
		if shift > 24 {
			// Below half of 2⁻²⁴ even for the largest significand: rounds to 0.
			return sign
		}
		m := mant | 0x800000
		return sign | uint16(roundShift(m, shift))
	}
	// Rounding up may carry into the exponent, which is still the right
	// encoding, up to and including Inf.
	return sign | uint16(roundShift(uint32(e)<<23|mant, 13))
}

// roundShift returns x / 2^shift rounded to the nearest integer, ties to even.
func roundShift(x uint32, shift uint) uint32 {
	q := x >> shift
	rem := x & (1<<shift - 1)
	half := uint32(1) << (shift - 1)
	if rem > half || (rem == half && q&1 == 1) {
		q++
	}
	return q
}

// F16ToFloat32 returns the float32 value of the half-precision bits h. Every
// half value, subnormals included, is exactly representable as a float32.
func F16ToFloat32(h uint16) float32 {
	sign := uint32(h&0x8000) << 16
	exp := uint32(h>>10) & 0x1f
	mant := uint32(h & 0x3ff)
	switch {
	case exp == 0x1f:
		return math.Float32frombits(sign | 0x7f800000 | mant<<13)
	case exp == 0:
		// Zero or subnormal: mant·2⁻²⁴, exact in float32.
		v := float32(mant) * (1.0 / (1 << 24))
		if sign != 0 {
			v = -v
		}
		return v
	}
	return math.Float32frombits(sign | (exp-15+127)<<23 | mant<<13)
}

// Float32ToBF16 returns the bfloat16 value nearest to f, ties to even. Values
// that round beyond the largest bfloat16 become ±Inf; NaN stays NaN (quiet).
func Float32ToBF16(f float32) uint16 {
	bits := math.Float32bits(f)
	if bits&0x7fffffff > 0x7f800000 {
		return uint16(bits>>16) | 0x0040
	}
	return uint16(roundShift(bits, 16))
}

// BF16ToFloat32 returns the float32 value of the bfloat16 bits b, which is
// exact: bfloat16 is the top half of a float32.
func BF16ToFloat32(b uint16) float32 {
	return math.Float32frombits(uint32(b) << 16)
}

// decodeChunk is the number of elements one call of an assembly decoder
// converts at most.
const decodeChunk = 1 << 16

// DecodeF16 fills dst from the little-endian F16 values in src, which holds
// at least 2·len(dst) bytes. On amd64 it runs AVX-512 or AVX2 code when the
// CPU has it (internal/cpu chooses; GOLORA_KERNELS caps the level), with the
// same bits as F16ToFloat32 for every input, NaN payloads included.
func DecodeF16(dst []float32, src []byte) { decodeAt(cpu.Best(), true, dst, src) }

// DecodeBF16 fills dst from the little-endian BF16 values in src, which
// holds at least 2·len(dst) bytes. It runs vector code as DecodeF16 does.
func DecodeBF16(dst []float32, src []byte) { decodeAt(cpu.Best(), false, dst, src) }

// DecodeBF16Finite is DecodeBF16 that also reports whether every value is
// finite (no NaN or ±Inf), checked while the values are decoded: a loader
// that must refuse non-finite weights then needs no second pass over them.
func DecodeBF16Finite(dst []float32, src []byte) bool {
	return decodeBF16FiniteAt(cpu.Best(), dst, src)
}

// bf16Finite reports whether the little-endian BF16 values in src (an even
// number of bytes) are all finite. It tests four values per 64-bit word: a
// value's exponent bits (0x7f80) plus one carry into its sign bit exactly
// when they are all ones, and the 16-bit lanes cannot carry into each other.
func bf16Finite(src []byte) bool {
	const (
		exponents = 0x7f80_7f80_7f80_7f80
		carry     = 0x0080_0080_0080_0080
		signs     = 0x8000_8000_8000_8000
	)
	var acc uint64
	for len(src) >= 8 {
		acc |= binary.LittleEndian.Uint64(src)&exponents + carry
		src = src[8:]
	}
	for ; len(src) >= 2; src = src[2:] {
		acc |= uint64(binary.LittleEndian.Uint16(src))&exponents + carry
	}
	return acc&signs == 0
}

// decodeF16Scalar is DecodeF16 in pure Go.
func decodeF16Scalar(dst []float32, src []byte) {
	for i := range dst {
		dst[i] = F16ToFloat32(binary.LittleEndian.Uint16(src[2*i:]))
	}
}

// decodeBF16Scalar is DecodeBF16 in pure Go.
func decodeBF16Scalar(dst []float32, src []byte) {
	// Re-slicing first lets the compiler drop the per-element bounds checks.
	src = src[:2*len(dst)]
	for i := range dst {
		dst[i] = math.Float32frombits(uint32(src[2*i])<<16 | uint32(src[2*i+1])<<24)
	}
}
