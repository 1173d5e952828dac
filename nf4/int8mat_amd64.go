package nf4

import "github.com/golora/golora/internal/cpu"

// The Int8Matrix kernels (int8mat_amd64.s) cover rows consecutive whole
// rows of pairs pairs each (rowBytes bytes of codes, scaleBytes of block
// maxima), in int8MatScalar's order. With AVX-512 VNNI four rows share each
// load of the vector (int8MatRows4VNNI, rows a multiple of 4) and
// int8MatRows1VNNI takes the rest; AVX2 runs one row at a time.

//go:noescape
func int8MatRows4VNNI(y *float32, codes *uint8, q *int8, bias *int32, xscale *float32, wscale *float32, rows, pairs, rowBytes, scaleBytes int)

//go:noescape
func int8MatRows1VNNI(y *float32, codes *uint8, q *int8, bias *int32, xscale *float32, wscale *float32, rows, pairs, rowBytes, scaleBytes int)

//go:noescape
func int8MatRowsAVX2(y *float32, codes *uint8, q *int8, bias *int32, xscale *float32, wscale *float32, rows, pairs, rowBytes, scaleBytes int)

// int8MatChunk is the number of rows a kernel call covers at most, so that
// it returns within tens of microseconds (assembly is not preemptible).
const int8MatChunk = 256

// mulVecAt computes y[r] for rows [r0, r1) with the kernels of level l:
// VNNI at AVX512 on a CPU that has it, else AVX2 from AVX2 up.
func (m *Int8Matrix) mulVecAt(l cpu.Level, y []float32, x *Int8Vector, r0, r1 int) {
	if l == cpu.Generic {
		m.int8MatScalar(y, x, r0, r1)
		return
	}
	vnni := l >= cpu.AVX512 && cpu.HasAVX512VNNI()
	rowBytes, scaleBytes := m.pairs*int8Pair, m.pairs*4*4
	for r := r0; r < r1; {
		n := min(int8MatChunk, r1-r)
		codes := m.codes[r*rowBytes : (r+n)*rowBytes]
		scales := m.scales[r*m.pairs*4:]
		ys := y[r : r+n]
		if !vnni {
			int8MatRowsAVX2(&ys[0], &codes[0], &x.q[0], &x.bias[0], &x.scale[0], &scales[0], n, m.pairs, rowBytes, scaleBytes)
			r += n
			continue
		}
		four := n &^ 3
		if four > 0 {
			int8MatRows4VNNI(&ys[0], &codes[0], &x.q[0], &x.bias[0], &x.scale[0], &scales[0], four, m.pairs, rowBytes, scaleBytes)
		}
		if four < n {
			int8MatRows1VNNI(&ys[four], &codes[four*rowBytes], &x.q[0], &x.bias[0], &x.scale[0], &scales[four*m.pairs*4], n-four, m.pairs, rowBytes, scaleBytes)
		}
		r += n
	}
}
