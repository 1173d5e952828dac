package nf4

import "github.com/golora/golora/internal/cpu"

// The int8 kernels (int8dot_amd64.s) cover rows consecutive whole rows of
// W, steps steps of 64 columns each (rowBytes = 32·steps bytes of codes),
// given the absmax of each of their blocks row after row (scaleBytes bytes
// per row, perBlock steps per block). With AVX-512 VNNI four rows share
// each load of the vector (int8Rows4VNNI, rows a multiple of 4), and
// int8Rows1VNNI takes the rest; AVX2 runs one row at a time.

//go:noescape
func int8Rows4VNNI(y *float32, codes *byte, q *int8, bias *int32, xscale *float32, wscale *float32, lut *[16]uint8, rows, steps, perBlock, rowBytes, scaleBytes int)

//go:noescape
func int8Rows1VNNI(y *float32, codes *byte, q *int8, bias *int32, xscale *float32, wscale *float32, lut *[16]uint8, rows, steps, perBlock, rowBytes, scaleBytes int)

//go:noescape
func int8RowsAVX2(y *float32, codes *byte, q *int8, bias *int32, xscale *float32, wscale *float32, lut *[16]int8, rows, steps, perBlock, rowBytes, scaleBytes int)

// int8ScaleBuf is the number of block scales a kernel call is given at
// most (on the stack).
const int8ScaleBuf = 1024

// mulVecInt8At computes y[r] for rows [r0, r1) with the kernels of level
// l: VNNI at AVX512 on a CPU that has it, else AVX2 from AVX2 up; the block
// scales come from absmax, or are decoded for each call when it is nil.
func (m *Matrix) mulVecInt8At(l cpu.Level, y []float32, x *Int8Vector, absmax []float32, r0, r1 int) {
	perRow := m.cols / m.blockSize
	if l == cpu.Generic || perRow > int8ScaleBuf {
		m.mulVecInt8Scalar(y, x, absmax, r0, r1)
		return
	}
	vnni := l >= cpu.AVX512 && cpu.HasAVX512VNNI()
	steps, rowBytes := m.cols/int8Step, m.cols/2
	perBlock := m.blockSize / int8Step
	chunk := min(int8Chunk, int8ScaleBuf/perRow)
	var buf [int8ScaleBuf]float32
	for r := r0; r < r1; {
		n := min(chunk, r1-r)
		var scales []float32
		if absmax != nil {
			scales = absmax[r*perRow : (r+n)*perRow]
		} else {
			scales = buf[:n*perRow]
			m.fillScales(l, scales, r*perRow)
		}
		codes := m.packed[r*rowBytes : (r+n)*rowBytes]
		ys := y[r : r+n]
		if !vnni {
			int8RowsAVX2(&ys[0], &codes[0], &x.q[0], &x.bias[0], &x.scale[0], &scales[0], &int8Codebook, n, steps, perBlock, rowBytes, 4*perRow)
			r += n
			continue
		}
		four := n &^ 3
		if four > 0 {
			int8Rows4VNNI(&ys[0], &codes[0], &x.q[0], &x.bias[0], &x.scale[0], &scales[0], &int8CodebookBiased, four, steps, perBlock, rowBytes, 4*perRow)
		}
		if four < n {
			int8Rows1VNNI(&ys[four], &codes[four*rowBytes], &x.q[0], &x.bias[0], &x.scale[0], &scales[four*perRow], &int8CodebookBiased, n-four, steps, perBlock, rowBytes, 4*perRow)
		}
		r += n
	}
}
