package nf4

import (
	"fmt"
	"math"

	"github.com/golora/golora/internal/cpu"
)

// Int8Matrix is a matrix quantized to int8 in blocks of Int8Group weights
// along each row with one float32 scale each (llama.cpp's Q8_0), stored for
// integer dot products with an Int8Vector (MulVecRows): a decode step's
// output head then costs one VPDPBUSD per 64 weights rather than a
// conversion to float32 and a multiply per weight.
type Int8Matrix struct {
	rows, cols, pairs int
	// codes holds each row's pairs of 128 columns, 128 bytes each in the
	// order of an Int8Vector's pair (the odd columns, then the even ones),
	// every code plus 128 as an unsigned byte (VPDPBUSD multiplies
	// unsigned by signed bytes; the vector's lane biases take the 128s
	// back out). Columns past cols hold code 0.
	codes []uint8
	// scales holds each row's pairs' four block maxima (the Q8_0 scale
	// times 127: the vector's lane scales hold the other 1/127), zero past
	// cols, then int8MatPad more zeros: the VNNI kernel loads 64 bytes at
	// each pair's four.
	scales []float32
}

// int8MatPad is the number of zero scales after an Int8Matrix's last.
const int8MatPad = int8Lanes - 4

// NewInt8Matrix returns the Int8Matrix of a [rows, cols] matrix given in
// Q8_0's layout: codes (rows·cols values in [−127, 127], row-major) and
// scales (one per Int8Group consecutive codes of a row; weight = code ·
// scale, every scale finite). cols is a positive multiple of Int8Group.
func NewInt8Matrix(codes []int8, scales []float32, rows, cols int) (*Int8Matrix, error) {
	if rows <= 0 || cols <= 0 || cols%Int8Group != 0 {
		return nil, fmt.Errorf("nf4: NewInt8Matrix: shape [%d %d]: want positive, columns a multiple of %d", rows, cols, Int8Group)
	}
	if rows > math.MaxInt/cols {
		return nil, fmt.Errorf("nf4: NewInt8Matrix: shape [%d %d]: more elements than an int counts", rows, cols)
	}
	if len(codes) != rows*cols || len(scales) != rows*cols/Int8Group {
		return nil, fmt.Errorf("nf4: NewInt8Matrix: %d codes and %d scales for shape [%d %d], want %d and %d",
			len(codes), len(scales), rows, cols, rows*cols, rows*cols/Int8Group)
	}
	pairs := (cols + int8Pair - 1) / int8Pair
	m := &Int8Matrix{
		rows: rows, cols: cols, pairs: pairs,
		codes:  make([]uint8, rows*pairs*int8Pair),
		scales: make([]float32, rows*pairs*4+int8MatPad),
	}
	for i := range m.codes {
		m.codes[i] = 128
	}
	groups := cols / Int8Group
	for r := range rows {
		row := codes[r*cols : (r+1)*cols]
		for c, q := range row {
			p, k := c/int8Pair, c%int8Pair
			at := (r*pairs+p)*int8Pair + k/2
			if k%2 == 0 {
				at += int8Step
			}
			if q == -128 {
				return nil, fmt.Errorf("nf4: NewInt8Matrix: code -128 at row %d, column %d: want [-127, 127]", r, c)
			}
			m.codes[at] = uint8(int(q) + 128)
		}
		for g, s := range scales[r*groups : (r+1)*groups] {
			if v := float64(s * 127); math.IsNaN(v) || math.IsInf(v, 0) {
				return nil, fmt.Errorf("nf4: NewInt8Matrix: scale %g at row %d, block %d: want finite, of magnitude at most %g", s, r, g, math.MaxFloat32/127)
			}
			m.scales[r*pairs*4+g] = s * 127
		}
	}
	return m, nil
}

// Rows returns the number of rows.
func (m *Int8Matrix) Rows() int { return m.rows }

// Cols returns the number of columns.
func (m *Int8Matrix) Cols() int { return m.cols }

// MulVecRows writes y[r] ≈ Σ_c W[r, c]·x[c] for the rows r in [start,
// end), from x quantized to int8 (an Int8Vector of cols values): per block
// of Int8Group columns an exact integer dot product, scaled by the vector
// block's scale and the weight block's. Every kernel level gives the same
// bits (int8MatScalar's order). It runs on the calling goroutine and does
// not allocate; y has at least end elements, and only y[start:end] is
// written.
func (m *Int8Matrix) MulVecRows(y []float32, x *Int8Vector, start, end int) error {
	if x.n != m.cols {
		return fmt.Errorf("nf4: Int8Matrix.MulVecRows: vector of %d values, matrix has %d columns", x.n, m.cols)
	}
	if start < 0 || end > m.rows || start > end || len(y) < end {
		return fmt.Errorf("nf4: Int8Matrix.MulVecRows: rows [%d, %d) of %d into y of %d", start, end, m.rows, len(y))
	}
	if start < end {
		m.mulVecAt(cpu.Best(), y, x, start, end)
	}
	return nil
}

// int8MatScalar computes y[r] for rows [r0, r1) in the order every kernel
// follows: per pair, lane j's integer sum I of its eight columns (the
// lane bias included), then acc[j] += (float32(I)·scale[j])·w, w the
// scale of the block of lane j (j/4), each operation rounded to float32;
// then the lanes folded as int8Fold does.
func (m *Int8Matrix) int8MatScalar(y []float32, x *Int8Vector, r0, r1 int) {
	for r := r0; r < r1; r++ {
		var acc [int8Lanes]float32
		for p := range m.pairs {
			at := (r*m.pairs + p) * int8Pair
			codes := (*[int8Pair]uint8)(m.codes[at:])
			q := (*[int8Pair]int8)(x.q[p*int8Pair:])
			scale := (*[int8Lanes]float32)(x.scale[p*int8Lanes:])
			ws := m.scales[(r*m.pairs+p)*4:]
			for j := range int8Lanes {
				sum := x.bias[p*int8Lanes+j]
				for k := 4 * j; k < 4*j+4; k++ {
					sum += int32(codes[k])*int32(q[k]) + int32(codes[int8Step+k])*int32(q[int8Step+k])
				}
				acc[j] += float32(float32(float32(sum)*scale[j]) * ws[j/4])
			}
		}
		y[r] = int8Fold(&acc)
	}
}
