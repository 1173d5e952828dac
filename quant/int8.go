package quant

import (
	"fmt"
	"math"
)

// Int8 is a weight quantized to symmetric linear 8-bit codes: per block a
// float32 absmax, per element q = round(x/absmax·127) in [−127, 127]. An
// element dequantizes to q·(absmax/127), the scale computed in float32.
type Int8 struct {
	rows, cols, blockSize int
	codes                 []int8
	absmax                []float32
}

// QuantizeInt8 quantizes the row-major weight w of shape [rows, cols] to Int8
// with blockSize consecutive elements per absmax (32, 64, …, 4096). Rounding
// is to nearest, halves away from zero. It returns an error for a bad shape,
// length or block size, or for a NaN or ±Inf weight.
func QuantizeInt8(w []float32, rows, cols, blockSize int) (*Int8, error) {
	if err := checkShape(w, rows, cols, blockSize); err != nil {
		return nil, fmt.Errorf("quant: int8: %w", err)
	}
	m := &Int8{
		rows:      rows,
		cols:      cols,
		blockSize: blockSize,
		codes:     make([]int8, len(w)),
		absmax:    make([]float32, NumBlocks(len(w), blockSize)),
	}
	if err := blockAbsmax(m.absmax, w, blockSize); err != nil {
		return nil, fmt.Errorf("quant: int8: %w", err)
	}
	for b, s := range m.absmax {
		if s == 0 {
			continue // codes stay 0
		}
		lo := b * blockSize
		hi := min(lo+blockSize, len(w))
		for i, v := range w[lo:hi] {
			// v·127 is exact in float64, so exact halves stay halves.
			q := math.Round(float64(v) * 127 / float64(s))
			m.codes[lo+i] = int8(min(max(q, -127), 127))
		}
	}
	return m, nil
}

// Dims returns the logical shape [rows, cols].
func (m *Int8) Dims() (rows, cols int) { return m.rows, m.cols }

// BlockSize returns the number of consecutive elements sharing one absmax.
func (m *Int8) BlockSize() int { return m.blockSize }

// Format returns "int8".
func (m *Int8) Format() string { return "int8" }

// StorageBytes returns one byte per element plus 4 bytes per block absmax.
func (m *Int8) StorageBytes() int64 {
	return int64(len(m.codes)) + 4*int64(len(m.absmax))
}

// BitsPerParam returns 8·StorageBytes / (rows·cols).
func (m *Int8) BitsPerParam() float64 {
	return 8 * float64(m.StorageBytes()) / float64(m.rows*m.cols)
}

// DequantizeRows writes rows [start, end) into dst[:(end-start)*cols] as
// q·(absmax/127) in float32. It does not allocate.
func (m *Int8) DequantizeRows(dst []float32, start, end int) error {
	if err := checkRows(dst, start, end, m.rows, m.cols); err != nil {
		return fmt.Errorf("quant: int8: %w", err)
	}
	e0, e1 := start*m.cols, end*m.cols
	out := dst[:e1-e0]
	for e := e0; e < e1; {
		b := e / m.blockSize
		hi := min((b+1)*m.blockSize, e1)
		s := m.absmax[b] / 127
		for ; e < hi; e++ {
			out[e-e0] = float32(m.codes[e]) * s
		}
	}
	return nil
}

// MulT computes y = x·Wᵀ straight from the codes: each block's dot product
// with x is summed in float64 over the integer codes and scaled once.
func (m *Int8) MulT(y, x []float32, n int) error {
	if err := checkMulT(y, x, n, m.rows, m.cols); err != nil {
		return fmt.Errorf("quant: int8: %w", err)
	}
	for r := range m.rows {
		e0, e1 := r*m.cols, (r+1)*m.cols
		for i := range n {
			xi := x[i*m.cols : (i+1)*m.cols]
			var acc float64
			for e := e0; e < e1; {
				b := e / m.blockSize
				hi := min((b+1)*m.blockSize, e1)
				var dot float64
				for ; e < hi; e++ {
					dot += float64(xi[e-e0]) * float64(m.codes[e])
				}
				acc += dot * float64(m.absmax[b]/127)
			}
			y[i*m.rows+r] = float32(acc)
		}
	}
	return nil
}
