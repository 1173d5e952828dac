package gemm

import "github.com/golora/golora/internal/cpu"

// useTranspose8 selects the AVX 8×8 block transpose for packing; set once at
// start-up from the CPU features (capped by GOLORA_KERNELS).
var useTranspose8 = cpu.Best() >= cpu.AVX2

// transpose8Fits reports whether transposeBlocks transposes eight rows k
// long.
func transpose8Fits(k int) bool { return useTranspose8 && k >= 8 }

// transposeBlocks does transpose's work for rows [0, rows) and steps
// [0, k) in 8×8 blocks when rows and k are at least 8, and reports whether
// it did. The last block of rows and of steps is moved back to end at rows
// and k, overlapping the one before it: the overlap is written twice with
// the same values.
func transposeBlocks(panel []float32, w int, src []float32, ld, rows, k int) bool {
	if rows < 8 || !transpose8Fits(k) {
		return false
	}
	_ = src[(rows-1)*ld+k-1]
	_ = panel[(k-1)*w+rows-1]
	k8 := k &^ 7
	for i := 0; ; i += 8 {
		i = min(i, rows-8)
		transpose8AVX(&panel[i], w, &src[i*ld], ld, k8)
		if k8 < k {
			transpose8AVX(&panel[(k-8)*w+i], w, &src[i*ld+k-8], ld, 8)
		}
		if i == rows-8 {
			return true
		}
	}
}

// transpose8AVX writes dst[p·w+i] = src[i·ld+p] for i < 8 and p < k, k a
// positive multiple of 8.
//
//go:noescape
func transpose8AVX(dst *float32, w int, src *float32, ld int, k int)
