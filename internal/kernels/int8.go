package kernels

import (
	"fmt"
	"math"

	"github.com/golora/golora/internal/cpu"
)

// Int8Block is the number of consecutive weights of a row that share one
// scale in an Int8Matrix (llama.cpp's Q8_0 block).
const Int8Block = 32

// Int8Matrix is a [Rows, Cols] matrix quantized to int8 in blocks of
// Int8Block along each row, with one float32 scale per block: the weight at
// flat index i is Codes[i]·Scales[i/Int8Block]. It is the layout of
// llama.cpp's Q8_0 with float32 scales, a quarter of the bytes of float32:
// single-row products with a large matrix (a decode step's output head) are
// bound by reading it.
type Int8Matrix struct {
	Rows, Cols int
	Codes      []int8
	Scales     []float32
}

// QuantizeInt8 quantizes w ([rows, cols] row-major, cols a multiple of
// Int8Block) to an Int8Matrix: each block's scale is its largest |w| / 127
// and each code the nearest integer to w/scale (ties away from zero). It
// reports the first value that is not finite.
func QuantizeInt8(w []float32, rows, cols int) (*Int8Matrix, error) {
	if rows <= 0 || cols <= 0 || cols%Int8Block != 0 {
		return nil, fmt.Errorf("kernels: QuantizeInt8: shape [%d %d]: want positive, columns a multiple of %d", rows, cols, Int8Block)
	}
	if len(w) != rows*cols {
		return nil, fmt.Errorf("kernels: QuantizeInt8: %d values for shape [%d %d]", len(w), rows, cols)
	}
	m := &Int8Matrix{Rows: rows, Cols: cols, Codes: make([]int8, len(w)), Scales: make([]float32, len(w)/Int8Block)}
	for b := range m.Scales {
		blk := w[b*Int8Block : (b+1)*Int8Block]
		if k := FirstNonFinite(blk); k >= 0 {
			i := b*Int8Block + k
			return nil, fmt.Errorf("kernels: QuantizeInt8: value %v at row %d, column %d is not finite", blk[k], i/cols, i%cols)
		}
		m.Scales[b] = quantizeBlock(m.Codes[b*Int8Block:(b+1)*Int8Block], blk)
	}
	return m, nil
}

// FirstNonFinite returns the index of the first NaN or ±Inf in x, or −1.
// It tests the bits rather than converting to float64 for math.IsNaN and
// math.IsInf, which a profile of a 1B-parameter load showed costing a
// quarter of the quantization time. The loaders, nf4 and the int8
// quantizer share it.
func FirstNonFinite(x []float32) int {
	for i, v := range x {
		if math.Float32bits(v)&^(1<<31) >= 0x7f800000 {
			return i
		}
	}
	return -1
}

// quantizeBlock writes the int8 codes of the finite block x into codes and
// returns its scale: largest |x| / 127, codes rounded to nearest (ties away
// from zero).
func quantizeBlock(codes []int8, x []float32) float32 {
	var amax float32
	for _, v := range x {
		amax = max(amax, math.Float32frombits(math.Float32bits(v)&^(1<<31)))
	}
	if amax == 0 {
		clear(codes)
		return 0
	}
	scale := amax / 127
	inv := 1 / float64(scale)
	for k, v := range x {
		codes[k] = int8(max(-127, min(127, math.Round(float64(v)*inv))))
	}
	return scale
}

// int8Chunk is the number of rows one assembly call covers, so that it
// returns within tens of microseconds (assembly is not preemptible).
const int8Chunk = 256

// MulVecRows writes y[r] = Σ_c W[r, c]·x[c] for rows r in [start, end) of
// the matrix; x has Cols elements and y at least end. The sums run in a
// fixed order on every CPU (int8DotGeneric's), so results do not depend on
// the kernel level.
func (m *Int8Matrix) MulVecRows(y, x []float32, start, end int) {
	m.mulVecRowsAt(cpu.Best(), y, x, start, end)
}

// mulVecRowsAt is MulVecRows with the kernels of level l.
func (m *Int8Matrix) mulVecRowsAt(l cpu.Level, y, x []float32, start, end int) {
	cols := m.Cols
	blocks := cols / Int8Block
	x = x[:cols]
	y = y[start:end]
	codes := m.Codes[start*cols : end*cols]
	scales := m.Scales[start*blocks : end*blocks]
	if l == cpu.Generic {
		for r := range y {
			y[r] = int8DotGeneric(codes[r*cols:(r+1)*cols], scales[r*blocks:(r+1)*blocks], x)
		}
		return
	}
	for r0 := 0; r0 < len(y); r0 += int8Chunk {
		n := min(int8Chunk, len(y)-r0)
		int8Rows(l, y[r0:r0+n], codes[r0*cols:], scales[r0*blocks:], x, n, blocks)
	}
}

// int8DotGeneric returns the dot product of one row (codes, scales) with x
// in the order every kernel level follows: 16 lanes, two accumulators for
// even and odd blocks; within a block lane j adds code j's product to code
// j+16's, and the block's scale multiplies that before it is accumulated;
// the two accumulators are added, then the lanes folded in halves (j with
// j+8, j+4, j+2, j+1). The explicit float32 conversions keep the compiler
// from fusing multiply-adds, which the assembly does not use either.
func int8DotGeneric(codes []int8, scales, x []float32) float32 {
	var acc [2][16]float32
	for b, s := range scales {
		q := codes[b*Int8Block : (b+1)*Int8Block]
		xs := x[b*Int8Block : (b+1)*Int8Block]
		a := &acc[b&1]
		for j := range 16 {
			t := float32(float32(q[j])*xs[j]) + float32(float32(q[j+16])*xs[j+16])
			a[j] += float32(s * t)
		}
	}
	var l [16]float32
	for j := range l {
		l[j] = acc[0][j] + acc[1][j]
	}
	for half := 8; half >= 1; half /= 2 {
		for j := range half {
			l[j] += l[j+half]
		}
	}
	return l[0]
}
