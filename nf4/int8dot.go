package nf4

import (
	"fmt"
	"math"

	"github.com/golora/golora/internal/cpu"
)

// The int8 product (Matrix.MulVecInt8Rows) multiplies a matrix by a vector
// the way llama.cpp multiplies its 4-bit formats by Q8_0 activations: the
// vector is quantized to int8 once per product, in blocks of Int8Group
// values with a float32 scale each (Int8Vector), every NF4 code becomes an
// int8 (int8Codebook, the 16 NF4 levels times 127, rounded), and each
// Int8Group-value block of a row is an exact integer dot product, scaled
// once by the vector block's scale and the NF4 block's absmax. The integer
// sums are exact at every kernel level, and the float32 operations after
// them run in one fixed order (int8StepScalar, int8Fold), so the results
// do not depend on the CPU.

// Int8Group is the number of consecutive vector values sharing one scale in
// an Int8Vector, as in llama.cpp's Q8_0.
const Int8Group = 32

// int8Step is the number of columns one NF4 block scale covers at least
// (blocks of 64 or more): 32 bytes of codes.
const int8Step = 64

// int8Pair is the number of columns the kernels take at a time: two steps,
// 64 bytes of codes.
const int8Pair = 2 * int8Step

// int8Lanes is the number of int32 (and then float32) lanes of a pair:
// lane j sums the products of the pair's columns 8j…8j+7.
const int8Lanes = 16

// int8Codebook is the NF4 codebook times 127, rounded to the nearest
// integer: the weight of code c is int8Codebook[c]/127·absmax instead of
// codebook[c]·absmax. The rounding moves a level by at most 0.5/127 of the
// block's absmax (0.0039; the largest move is 0.49/127, at code 13),
// against gaps of 0.08 to 0.30 between NF4 levels.
var int8Codebook = func() (k [16]int8) {
	for i, c := range codebook {
		k[i] = int8(math.Round(float64(c) * 127))
	}
	return k
}()

// int8CodebookBiased is int8Codebook + 128 as unsigned bytes, the weights of
// VPDPBUSD (unsigned × signed); Int8Vector's bias takes the 128 back out.
var int8CodebookBiased = func() (k [16]uint8) {
	for i, c := range int8Codebook {
		k[i] = uint8(int(c) + 128)
	}
	return k
}()

// Int8Codebook returns the int8 levels MulVecInt8Rows uses for the 16 NF4
// codes: each NF4 value times 127, rounded.
func Int8Codebook() [16]int8 { return int8Codebook }

// Int8Vector is a vector quantized to int8 for Matrix.MulVecInt8Rows and
// Int8Matrix.MulVecRows: each block of Int8Group values x gets the scale
// max|x|/127 and the codes x·127/max|x| rounded to the nearest integer
// (ties to even), so a value moves by at most half its block's step. Its
// length is a multiple of Int8Group (of 64 for Matrix.MulVecInt8Rows). The
// zero value is empty; Quantize sizes it, and reuses its memory when it is
// large enough, so a decode step does not allocate.
type Int8Vector struct {
	n int
	// q holds the codes, 128 bytes per pair of 64-column steps, in the
	// order of the NF4 codes' nibbles: first the odd columns (the low
	// nibbles) of the pair's 64 code bytes, then its even columns (the high
	// nibbles). The columns a last pair lacks have zero codes.
	q []int8
	// bias holds, per pair, the 16 int32 lanes' −128 × the sum of the eight
	// codes that lane adds up: what the +128 of int8CodebookBiased adds.
	bias []int32
	// scale holds, per pair, each lane's scale: max|x|/127² of the group
	// its columns belong to (lanes 4g…4g+3: the pair's group g), the 1/127
	// of int8Codebook folded in.
	scale []float32
}

// Len returns the number of values quantized.
func (v *Int8Vector) Len() int { return v.n }

// Quantize quantizes x (its length a positive multiple of Int8Group, every
// value finite) into v, replacing what v held.
func (v *Int8Vector) Quantize(x []float32) error {
	if len(x) == 0 || len(x)%Int8Group != 0 {
		return fmt.Errorf("nf4: Int8Vector.Quantize: %d values, want a positive multiple of %d", len(x), Int8Group)
	}
	pairs := (len(x) + int8Pair - 1) / int8Pair
	if cap(v.q) < pairs*int8Pair {
		v.q = make([]int8, pairs*int8Pair)
		v.bias = make([]int32, pairs*int8Lanes)
		v.scale = make([]float32, pairs*int8Lanes)
	}
	v.n = len(x)
	v.q, v.bias, v.scale = v.q[:pairs*int8Pair], v.bias[:pairs*int8Lanes], v.scale[:pairs*int8Lanes]
	return v.quantizeAt(cpu.Best(), x)
}

// quantizeAt quantizes x into v, sized for it, pair after pair with the
// code of level l.
func (v *Int8Vector) quantizeAt(l cpu.Level, x []float32) error {
	for p := range len(v.q) / int8Pair {
		c0 := p * int8Pair
		q := (*[int8Pair]int8)(v.q[c0:])
		scale := (*[int8Lanes]float32)(v.scale[p*int8Lanes:])
		bias := (*[int8Lanes]int32)(v.bias[p*int8Lanes:])
		xs := x[c0:min(len(x), c0+int8Pair)]
		if len(xs) < int8Pair {
			// The columns a last pair lacks.
			clear(q[len(xs)/2 : int8Step])
			clear(q[int8Step+len(xs)/2:])
			clear(scale[len(xs)/8:])
		}
		if g := quantizePairAt(l, q, scale, bias, xs); g >= 0 {
			return fmt.Errorf("nf4: Int8Vector.Quantize: a value in [%d, %d) is not finite", c0+g*Int8Group, c0+(g+1)*Int8Group)
		}
	}
	return nil
}

// minInt8Amax is the smallest group maximum that is quantized. Below it
// 127/amax overflows float32 (from about 3.7e-37 down, subnormals included),
// which would turn every code of the group into -128; such a group is
// quantized as zeros instead, an error of at most 32 × 2⁻¹²⁰ × |w| in its
// dot product.
const minInt8Amax = 0x1p-120

// quantizePairScalar quantizes the groups of x (one to four) into their
// places in a pair's codes q, lane scales and lane biases (the places of
// the columns the pair lacks already zero), and returns the index of the
// first group holding a NaN or ±Inf, or −1. Every kernel gives its bits.
func quantizePairScalar(q *[int8Pair]int8, scale *[int8Lanes]float32, bias *[int8Lanes]int32, x []float32) int {
	for g := range len(x) / Int8Group {
		blk := (*[Int8Group]float32)(x[g*Int8Group:])
		amax := math.Float32frombits(absmaxBits(blk[:]))
		if math.Float32bits(amax) >= nonFiniteBits {
			return g
		}
		var inv, s float32
		if amax >= minInt8Amax {
			inv, s = 127/amax, amax/(127*127)
		}
		// Column c of the pair: odd ones at c/2, even ones at 64 + c/2.
		odd := (*[Int8Group / 2]int8)(q[g*Int8Group/2:])
		even := (*[Int8Group / 2]int8)(q[int8Step+g*Int8Group/2:])
		for i := range Int8Group / 2 {
			even[i] = roundInt8(blk[2*i] * inv)
			odd[i] = roundInt8(blk[2*i+1] * inv)
		}
		for j := range 4 {
			scale[4*g+j] = s
		}
	}
	for j := range bias {
		var sum int32
		for k := range 4 {
			sum += int32(q[4*j+k]) + int32(q[int8Step+4*j+k])
		}
		bias[j] = -128 * sum
	}
	return -1
}

// roundInt8 rounds f to the nearest integer, ties to even, saturated to
// int8, as VCVTPS2DQ then VPMOVSDB do. |f| is at most 127 and a few ulps
// here: adding and subtracting 1.5·2²³ rounds a float32 below 2²² to an
// integer, ties to even.
func roundInt8(f float32) int8 {
	const magic = 3 << 22
	r := int32(float32(f+magic) - magic)
	return int8(max(-128, min(127, r)))
}

// SupportsInt8 reports whether MulVecInt8Rows runs on m: its rows are whole
// NF4 blocks of at least 64 weights (cols a multiple of the block size,
// block size at least 64), so every step of 64 columns has one absmax.
func (m *Matrix) SupportsInt8() bool {
	return m.blockSize >= int8Step && m.cols%m.blockSize == 0
}

// MulVecInt8Rows writes y[r] ≈ Σ_c W[r, c]·x[c] for the weight rows r in
// [start, end), from x quantized to int8 (Int8Vector of a vector of cols
// values) and the NF4 codes mapped to int8 (Int8Codebook): integer dot
// products of 32 values, each scaled by the vector block's scale and the
// NF4 block's absmax. It is an approximation of MulTRows: besides the
// vector's rounding (half a step of its block) each weight level moves by
// up to 0.5/127 of its block's absmax. Every kernel level gives the same
// bits. It runs on the calling goroutine and does not allocate; y has at
// least end elements, and only y[start:end] is written. m must support it
// (SupportsInt8).
//
// absmax is nil or m.Absmax(): the block scales decoded once by the
// caller. With double quantization each call otherwise decodes the scales
// of its rows, one per 64 weights, which costs about as much as the integer
// products themselves; decoded, they cost 4 bytes per block of memory.
// The result is the same either way.
func (m *Matrix) MulVecInt8Rows(y []float32, x *Int8Vector, absmax []float32, start, end int) error {
	if !m.SupportsInt8() {
		return fmt.Errorf("nf4: MulVecInt8Rows: [%d, %d] in blocks of %d: want whole blocks of at least %d per row", m.rows, m.cols, m.blockSize, int8Step)
	}
	if x.n != m.cols {
		return fmt.Errorf("nf4: MulVecInt8Rows: vector of %d values, matrix has %d columns", x.n, m.cols)
	}
	if start < 0 || end > m.rows || start > end || len(y) < end {
		return fmt.Errorf("nf4: MulVecInt8Rows: rows [%d, %d) of %d into y of %d", start, end, m.rows, len(y))
	}
	if absmax != nil && len(absmax) != len(m.packed)*2/m.blockSize {
		return fmt.Errorf("nf4: MulVecInt8Rows: %d block scales, the matrix has %d blocks", len(absmax), len(m.packed)*2/m.blockSize)
	}
	if start < end {
		m.mulVecInt8At(cpu.Best(), y, x, absmax, start, end)
	}
	return nil
}

// int8Chunk is the number of weight rows a kernel call covers at most, so
// that it returns within tens of microseconds (assembly is not preemptible).
const int8Chunk = 64

// mulVecInt8Scalar computes y[r] for rows [r0, r1) in the order every
// kernel follows.
func (m *Matrix) mulVecInt8Scalar(y []float32, x *Int8Vector, absmax []float32, r0, r1 int) {
	steps := m.cols / int8Step
	for r := r0; r < r1; r++ {
		var acc [int8Lanes]float32
		codes := m.packed[r*m.cols/2 : (r+1)*m.cols/2]
		for t := range steps {
			b := (r*m.cols + t*int8Step) / m.blockSize
			var w float32
			if absmax != nil {
				w = absmax[b]
			} else {
				w = m.scale(b)
			}
			int8StepScalar(&acc, (*[int8Step / 2]byte)(codes[t*int8Step/2:]), x, t, w)
		}
		y[r] = int8Fold(&acc)
	}
}

// int8StepScalar adds step t of a row (its 32 bytes of codes, its block's
// absmax w) to its half of the pair's lanes: lane j's integer sum I of the
// eight products of columns 8j…8j+7, then acc[j] += (float32(I)·scale[j])·w,
// each operation rounded to float32 (no fused multiply-add). A last step
// without a partner leaves the other half alone.
func int8StepScalar(acc *[int8Lanes]float32, codes *[int8Step / 2]byte, x *Int8Vector, t int, w float32) {
	p, h := t/2, t%2
	q := (*[int8Pair]int8)(x.q[p*int8Pair:])
	scale := (*[int8Lanes]float32)(x.scale[p*int8Lanes:])
	for j := 8 * h; j < 8*h+8; j++ {
		var sum int32
		for k := range 4 {
			b := codes[4*(j-8*h)+k]
			sum += int32(int8Codebook[b&15])*int32(q[4*j+k]) + int32(int8Codebook[b>>4])*int32(q[int8Step+4*j+k])
		}
		acc[j] += float32(float32(float32(sum)*scale[j]) * w)
	}
}

// int8Fold returns the sum of the lanes, folded in halves: lane j += lane
// j+8, then j+4, j+2, j+1.
func int8Fold(acc *[int8Lanes]float32) float32 {
	var l [8]float32
	for j := range l {
		l[j] = acc[j] + acc[j+8]
	}
	for half := 4; half >= 1; half /= 2 {
		for j := range half {
			l[j] += l[j+half]
		}
	}
	return l[0]
}
