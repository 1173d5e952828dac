package ggml

import "fmt"

// DequantizeBlock writes rows [r0, r1) and columns [c0, c1) of the matrix as
// float32 into dst, row r starting at dst[(r-r0)*ld]. Only the blocks that
// cover the columns are decoded, so a product that asks for the matrix block
// by block (internal/gemm's packing, through the training graph's frozen
// linear) decodes each weight about once instead of once per block of
// columns. The values are DequantizeRows' bits.
func (m *Matrix) DequantizeBlock(dst []float32, ld, r0, r1, c0, c1 int) error {
	if r0 < 0 || r1 > m.rows || r0 > r1 || c0 < 0 || c1 > m.cols || c0 > c1 {
		return fmt.Errorf("ggml: %s: DequantizeBlock: rows [%d, %d) and columns [%d, %d) out of bounds for [%d, %d]", m.name, r0, r1, c0, c1, m.rows, m.cols)
	}
	w := c1 - c0
	if r0 == r1 || w == 0 {
		return nil
	}
	if ld < w {
		return fmt.Errorf("ggml: %s: DequantizeBlock: leading dimension %d is less than the block's %d columns", m.name, ld, w)
	}
	if need := (r1-r0-1)*ld + w; len(dst) < need {
		return fmt.Errorf("ggml: %s: DequantizeBlock: destination has %d elements, the block needs %d", m.name, len(dst), need)
	}
	be, bb := m.f.blockElems, m.f.blockBytes
	b0, b1 := c0/be, (c1+be-1)/be
	skip, span := c0-b0*be, (b1-b0)*be
	// Columns that do not start and end on block boundaries are decoded
	// through one scratch row of their covering blocks.
	var scratch []float32
	if skip != 0 || span != w {
		scratch = make([]float32, span)
	}
	for r := r0; r < r1; r++ {
		blocks := m.data[r*m.rowBytes+b0*bb : r*m.rowBytes+b1*bb]
		out := dst[(r-r0)*ld : (r-r0)*ld+w]
		if scratch == nil {
			m.f.dequant(out, blocks)
			continue
		}
		m.f.dequant(scratch, blocks)
		copy(out, scratch[skip:skip+w])
	}
	return nil
}
