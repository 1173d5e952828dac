package nf4

import "fmt"

// DequantizeBlock writes rows [r0, r1) and columns [c0, c1) as float32 into
// dst, row-major with leading dimension ld: row r of the block starts at
// dst[(r-r0)·ld]. The values have the same bits as DequantizeRows gives. It
// does not allocate; it lets a matrix product decode just the block of the
// weight it is about to pack.
func (m *Matrix) DequantizeBlock(dst []float32, ld, r0, r1, c0, c1 int) error {
	if r0 < 0 || r1 > m.rows || r0 > r1 || c0 < 0 || c1 > m.cols || c0 > c1 {
		return fmt.Errorf("nf4: DequantizeBlock: rows [%d, %d) and columns [%d, %d) out of bounds for [%d, %d]", r0, r1, c0, c1, m.rows, m.cols)
	}
	w := c1 - c0
	if r0 == r1 || w == 0 {
		return nil
	}
	if ld < w {
		return fmt.Errorf("nf4: DequantizeBlock: leading dimension %d is less than the block's %d columns", ld, w)
	}
	if need := (r1-r0-1)*ld + w; len(dst) < need {
		return fmt.Errorf("nf4: DequantizeBlock: destination has %d elements, the block needs %d", len(dst), need)
	}
	if w == m.cols && ld == m.cols {
		// Whole rows, stored back to back: one run.
		m.dequantRange(dst, r0*m.cols, r1*m.cols)
		return nil
	}
	for r := r0; r < r1; r++ {
		m.dequantRange(dst[(r-r0)*ld:(r-r0)*ld+w], r*m.cols+c0, r*m.cols+c1)
	}
	return nil
}
