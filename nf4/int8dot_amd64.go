package nf4

import "github.com/golora/golora/internal/cpu"

// The int8 kernels (int8dot_amd64.s) cover rows consecutive whole rows of
// W, rowBytes bytes of codes each: pairs pairs of 64-column steps, then one
// step alone when half is 1. They are given one block absmax per step, row
// after row (scaleBytes bytes per row). With AVX-512 VNNI four rows share
// each load of the vector (int8Rows4VNNI, rows a multiple of 4), and
// int8Rows1VNNI takes the rest, or with AVX-512 VBMI int8Rows4VBMI and
// int8Rows1VBMI, whose VPERMB lookups need no nibble masks; AVX2 runs one
// row at a time.

//go:noescape
func int8Rows4VNNI(y *float32, codes *byte, q *int8, bias *int32, xscale *float32, wscale *float32, lut *[16]uint8, rows, pairs, half, rowBytes, scaleBytes int)

//go:noescape
func int8Rows1VNNI(y *float32, codes *byte, q *int8, bias *int32, xscale *float32, wscale *float32, lut *[16]uint8, rows, pairs, half, rowBytes, scaleBytes int)

//go:noescape
func int8Rows4VBMI(y *float32, codes *byte, q *int8, bias *int32, xscale *float32, wscale *float32, lut *[16]uint8, rows, pairs, half, rowBytes, scaleBytes int)

//go:noescape
func int8Rows1VBMI(y *float32, codes *byte, q *int8, bias *int32, xscale *float32, wscale *float32, lut *[16]uint8, rows, pairs, half, rowBytes, scaleBytes int)

//go:noescape
func int8RowsAVX2(y *float32, codes *byte, q *int8, bias *int32, xscale *float32, wscale *float32, lut *[16]int8, rows, pairs, half, rowBytes, scaleBytes int)

//go:noescape
func int8QuantizePairVNNI(x *float32, q *int8, scale *float32, bias *int32, groups int) int

// quantizePairAt is quantizePairScalar, in assembly at AVX512 on a CPU with
// AVX-512 VNNI (the lane biases are VPDPBUSD sums).
func quantizePairAt(l cpu.Level, q *[int8Pair]int8, scale *[int8Lanes]float32, bias *[int8Lanes]int32, x []float32) int {
	if l >= cpu.AVX512 && cpu.HasAVX512VNNI() {
		return int8QuantizePairVNNI(&x[0], &q[0], &scale[0], &bias[0], len(x)/Int8Group)
	}
	return quantizePairScalar(q, scale, bias, x)
}

// int8ScaleBuf is the number of step scales a kernel call is given at
// most (on the stack).
const int8ScaleBuf = 1024

// mulVecInt8At computes y[r] for rows [r0, r1) with the kernels of level
// l: VNNI at AVX512 on a CPU that has it, else AVX2 from AVX2 up. The
// block scales come from absmax, or are decoded for each call when it is
// nil; with blocks of 64 a row's block scales are its step scales, larger
// blocks repeat theirs.
func (m *Matrix) mulVecInt8At(l cpu.Level, y []float32, x *Int8Vector, absmax []float32, r0, r1 int) {
	m.mulVecInt8With(l, cpu.HasAVX512VBMI(), y, x, absmax, r0, r1)
}

// mulVecInt8With is mulVecInt8At with the VBMI kernels or not.
func (m *Matrix) mulVecInt8With(l cpu.Level, vbmi bool, y []float32, x *Int8Vector, absmax []float32, r0, r1 int) {
	steps := m.cols / int8Step
	if l == cpu.Generic || steps > int8ScaleBuf {
		m.mulVecInt8Scalar(y, x, absmax, r0, r1)
		return
	}
	vnni := l >= cpu.AVX512 && cpu.HasAVX512VNNI()
	rowBytes := m.cols / 2
	perBlock := m.blockSize / int8Step
	chunk := min(int8Chunk, int8ScaleBuf/steps)
	var buf [int8ScaleBuf]float32
	for r := r0; r < r1; {
		n := min(chunk, r1-r)
		var scales []float32
		switch {
		case perBlock == 1 && absmax != nil:
			scales = absmax[r*steps : (r+n)*steps]
		case perBlock == 1:
			scales = buf[:n*steps]
			m.fillScales(l, scales, r*steps)
		default:
			scales = buf[:n*steps]
			perRow := steps / perBlock
			var blocks [int8ScaleBuf]float32
			row := blocks[:n*perRow]
			if absmax != nil {
				copy(row, absmax[r*perRow:])
			} else {
				m.fillScales(l, row, r*perRow)
			}
			for i := range scales {
				scales[i] = row[i/perBlock]
			}
		}
		codes := m.packed[r*rowBytes : (r+n)*rowBytes]
		ys := y[r : r+n]
		pairs, half := steps/2, steps%2
		if !vnni {
			int8RowsAVX2(&ys[0], &codes[0], &x.q[0], &x.bias[0], &x.scale[0], &scales[0], &int8Codebook, n, pairs, half, rowBytes, 4*steps)
			r += n
			continue
		}
		// Direct calls: through a func value the arguments would escape.
		four := n &^ 3
		switch {
		case four > 0 && vbmi:
			int8Rows4VBMI(&ys[0], &codes[0], &x.q[0], &x.bias[0], &x.scale[0], &scales[0], &int8CodebookBiased, four, pairs, half, rowBytes, 4*steps)
		case four > 0:
			int8Rows4VNNI(&ys[0], &codes[0], &x.q[0], &x.bias[0], &x.scale[0], &scales[0], &int8CodebookBiased, four, pairs, half, rowBytes, 4*steps)
		}
		switch {
		case four < n && vbmi:
			int8Rows1VBMI(&ys[four], &codes[four*rowBytes], &x.q[0], &x.bias[0], &x.scale[0], &scales[four*steps], &int8CodebookBiased, n-four, pairs, half, rowBytes, 4*steps)
		case four < n:
			int8Rows1VNNI(&ys[four], &codes[four*rowBytes], &x.q[0], &x.bias[0], &x.scale[0], &scales[four*steps], &int8CodebookBiased, n-four, pairs, half, rowBytes, 4*steps)
		}
		r += n
	}
}
