package quant

import (
	"fmt"
	"math"

	"github.com/golora/golora/internal/half"
	"github.com/golora/golora/internal/parallel"
)

// Half is a frozen weight kept in a 16-bit floating-point format, BF16 or
// F16, as a checkpoint stores it: not a quantization (nothing is rounded
// when the values come from such a file) but half the memory of float32.
// golora keeps a QLoRA base's embedding and untied output head this way. Its
// values widen exactly to float32; its products run on vector kernels that
// read the 16-bit values directly (internal/half.MatVecBF16), with a fixed
// summation order that gives the same bits on every CPU.
type Half struct {
	rows, cols int
	f16        bool
	data       []uint16
}

// NewBF16 returns the [rows, cols] BF16 matrix whose row-major values are
// data; the matrix keeps data (it must not be changed afterwards). It
// returns an error if len(data) is not rows·cols.
func NewBF16(data []uint16, rows, cols int) (*Half, error) { return newHalf(data, rows, cols, false) }

// NewF16 is NewBF16 for F16 (IEEE binary16) values.
func NewF16(data []uint16, rows, cols int) (*Half, error) { return newHalf(data, rows, cols, true) }

func newHalf(data []uint16, rows, cols int, f16 bool) (*Half, error) {
	if rows <= 0 || cols <= 0 || rows > math.MaxInt/cols {
		return nil, fmt.Errorf("quant: %s: shape [%d, %d] is not positive or overflows int", halfFormat(f16), rows, cols)
	}
	if len(data) != rows*cols {
		return nil, fmt.Errorf("quant: %s: %d values, shape [%d, %d] needs %d", halfFormat(f16), len(data), rows, cols, rows*cols)
	}
	return &Half{rows: rows, cols: cols, f16: f16, data: data}, nil
}

// ToBF16 rounds the row-major float32 weight w of shape [rows, cols] to BF16
// (to nearest, ties to even); values that are already BF16 are kept exactly.
func ToBF16(w []float32, rows, cols int) (*Half, error) {
	data := make([]uint16, len(w))
	for i, v := range w {
		data[i] = half.Float32ToBF16(v)
	}
	return NewBF16(data, rows, cols)
}

// ToF16 is ToBF16 for F16: values beyond its range become ±Inf.
func ToF16(w []float32, rows, cols int) (*Half, error) {
	data := make([]uint16, len(w))
	for i, v := range w {
		data[i] = half.Float32ToF16(v)
	}
	return NewF16(data, rows, cols)
}

func halfFormat(f16 bool) string {
	if f16 {
		return "f16"
	}
	return "bf16"
}

// Dims returns the logical shape [rows, cols].
func (m *Half) Dims() (rows, cols int) { return m.rows, m.cols }

// Format returns "bf16" or "f16".
func (m *Half) Format() string { return halfFormat(m.f16) }

// IsF16 reports whether the values are F16 rather than BF16.
func (m *Half) IsF16() bool { return m.f16 }

// Values returns the row-major 16-bit values, which the caller must not
// change: for writing them to a file as they are.
func (m *Half) Values() []uint16 { return m.data }

// StorageBytes returns two bytes per element.
func (m *Half) StorageBytes() int64 { return 2 * int64(len(m.data)) }

// BitsPerParam returns 16.
func (m *Half) BitsPerParam() float64 { return 16 }

// FirstNonFinite returns the index of the first NaN or ±Inf value, or -1.
func (m *Half) FirstNonFinite() int {
	const chunk = 1 << 16
	for lo := 0; lo < len(m.data); lo += chunk {
		part := m.data[lo:min(lo+chunk, len(m.data))]
		if m.finite(part) {
			continue
		}
		for i, h := range part {
			if !m.finite([]uint16{h}) {
				return lo + i
			}
		}
	}
	return -1
}

func (m *Half) finite(v []uint16) bool {
	if m.f16 {
		return half.FiniteF16(v)
	}
	return half.FiniteBF16(v)
}

// widen writes the float32 values of src into dst.
func (m *Half) widen(dst []float32, src []uint16) {
	if m.f16 {
		half.WidenF16(dst, src)
	} else {
		half.WidenBF16(dst, src)
	}
}

// DequantizeRows writes rows [start, end) as float32 (exactly) into
// dst[:(end-start)*cols]. It does not allocate.
func (m *Half) DequantizeRows(dst []float32, start, end int) error {
	if err := checkRows(dst, start, end, m.rows, m.cols); err != nil {
		return fmt.Errorf("quant: %s: %w", m.Format(), err)
	}
	m.widen(dst, m.data[start*m.cols:end*m.cols])
	return nil
}

// DequantizeBlock writes rows [r0, r1) and columns [c0, c1) as float32 into
// dst, row-major with leading dimension ld, with DequantizeRows' values, so
// that a matrix product (internal/gemm's Source) widens just the block it
// packs. It does not allocate.
func (m *Half) DequantizeBlock(dst []float32, ld, r0, r1, c0, c1 int) error {
	switch {
	case r0 < 0 || r1 > m.rows || r0 > r1 || c0 < 0 || c1 > m.cols || c0 > c1:
		return fmt.Errorf("quant: %s: block rows [%d, %d) columns [%d, %d) out of bounds for [%d, %d]", m.Format(), r0, r1, c0, c1, m.rows, m.cols)
	case r1 > r0 && (ld < c1-c0 || len(dst) < (r1-r0-1)*ld+c1-c0):
		return fmt.Errorf("quant: %s: destination of %d elements with leading dimension %d is too small for rows [%d, %d) columns [%d, %d)", m.Format(), len(dst), ld, r0, r1, c0, c1)
	}
	for r := r0; r < r1; r++ {
		m.widen(dst[(r-r0)*ld:], m.data[r*m.cols+c0:r*m.cols+c1])
	}
	return nil
}

// halfParallelMin is the fewest weights a MulT splits over goroutines.
const halfParallelMin = 1 << 20

// MulT computes y = x·Wᵀ for the n rows of x, each entry with
// internal/half.MatVecBF16's summation order (its bits do not depend on
// the CPU). Large matrices are split by weight rows over GOMAXPROCS
// goroutines; each group of rows is read once for all n rows of x.
func (m *Half) MulT(y, x []float32, n int) error {
	if err := checkMulT(y, x, n, m.rows, m.cols); err != nil {
		return fmt.Errorf("quant: %s: %w", m.Format(), err)
	}
	if n == 0 {
		return nil
	}
	parallel.For(m.rows, max(4, halfParallelMin/(m.cols*n)), 4, func(lo, hi int) {
		m.mulTRows(y, x, n, lo, hi)
	})
	return nil
}

// MulTRows computes the entries of y = x·Wᵀ that weight rows [start, end)
// give, y[i, start:end] for every row i of x ([n, cols]; y is [n, rows] and
// its other entries are left alone), with MulT's bits. It runs on the
// calling goroutine and does not allocate, so that a decode step can split
// a product by rows over its own workers.
func (m *Half) MulTRows(y, x []float32, n, start, end int) error {
	if err := checkMulT(y, x, n, m.rows, m.cols); err != nil {
		return fmt.Errorf("quant: %s: %w", m.Format(), err)
	}
	if start < 0 || end > m.rows || start > end {
		return fmt.Errorf("quant: %s: MulTRows: row range [%d, %d) out of bounds for %d rows", m.Format(), start, end, m.rows)
	}
	m.mulTRows(y, x, n, start, end)
	return nil
}

// halfRowBlock is how many weight rows mulTRows multiplies by every row of
// x before moving on: 64 rows of 4096 BF16 values take 512 KiB, which stay
// in L2 while the rows of x go by.
const halfRowBlock = 64

func (m *Half) mulTRows(y, x []float32, n, start, end int) {
	for lo := start; lo < end; lo += halfRowBlock {
		hi := min(lo+halfRowBlock, end)
		w := m.data[lo*m.cols : hi*m.cols]
		for i := range n {
			xi, yi := x[i*m.cols:(i+1)*m.cols], y[i*m.rows+lo:i*m.rows+hi]
			if m.f16 {
				half.MatVecF16(yi, xi, w)
			} else {
				half.MatVecBF16(yi, xi, w)
			}
		}
	}
}

var _ Matrix = (*Half)(nil)
