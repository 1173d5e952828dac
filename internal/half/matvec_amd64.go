package half

import (
	"unsafe"

	"github.com/golora/golora/internal/cpu"
)

// The vector kernels compute the lanes and the folded sums of four rows
// (matVec4…) over n elements, n a positive multiple of 16; the Go code adds
// each row's remaining products and handles the last rows when there are
// fewer than four. A call covers four rows, so it returns within
// microseconds (assembly is not preemptible).

//go:noescape
func matVec4BF16AVX512(w *uint16, ld int, x *float32, n int, y *float32)

//go:noescape
func matVec4F16AVX512(w *uint16, ld int, x *float32, n int, y *float32)

//go:noescape
func matVec4BF16AVX2(w *uint16, ld int, x *float32, n int, y *float32)

//go:noescape
func matVec4F16AVX2(w *uint16, ld int, x *float32, n int, y *float32)

// matVecAt is MatVecBF16 (or, with f16, MatVecF16) with the kernels of
// level l. F16 at AVX2 needs F16C as well.
func matVecAt(l cpu.Level, f16 bool, y, x []float32, w []uint16) {
	cols := len(x)
	w = w[:len(y)*cols]
	n := cols &^ 15
	kernel := matVec4BF16AVX2
	switch {
	case l >= cpu.AVX512 && f16:
		kernel = matVec4F16AVX512
	case l >= cpu.AVX512:
		kernel = matVec4BF16AVX512
	case l >= cpu.AVX2 && f16 && cpu.HasF16C():
		kernel = matVec4F16AVX2
	case l >= cpu.AVX2 && !f16:
	default:
		matVecGeneric(f16, y, x, w)
		return
	}
	r := 0
	if n > 0 {
		for ; r+4 <= len(y); r += 4 {
			kernel(&w[r*cols], cols, &x[0], n, &y[r])
			if n < cols {
				for i := r; i < r+4; i++ {
					row := w[i*cols : (i+1)*cols]
					for k := n; k < cols; k++ {
						y[i] += float32(x[k] * widen16(f16, row[k]))
					}
				}
			}
		}
	}
	matVecGeneric(f16, y[r:], x, w[r*cols:])
}

// widenAt is WidenBF16 (or WidenF16) with the decoders of level l; amd64 is
// little-endian, so the values' memory is their little-endian encoding.
func widenAt(l cpu.Level, f16 bool, dst []float32, src []uint16) {
	if len(src) == 0 {
		return
	}
	decodeAt(l, f16, dst, unsafe.Slice((*byte)(unsafe.Pointer(&src[0])), 2*len(src)))
}
