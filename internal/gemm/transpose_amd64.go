package gemm

import "github.com/golora/golora/internal/cpu"

// useTranspose8 selects the AVX 8×8 block transpose for packing; set once at
// start-up from the CPU features (capped by GOLORA_KERNELS).
var useTranspose8 = cpu.Best() >= cpu.AVX2

// transpose8Fits reports whether transposeBlocks transposes eight rows k
// long.
func transpose8Fits(k int) bool { return useTranspose8 && k >= 8 }

// transposeBlocks does transpose's work for rows [0, rows) and steps
// [0, k) in 8×8 blocks when rows and k are at least 8, or in blocks of
// six rows by eight steps for a whole panel of six rows, and reports
// whether it did. The last block of rows and of steps is moved back to end
// at rows and k, overlapping the one before it: the overlap is written
// twice with the same values.
func transposeBlocks(panel []float32, w int, src []float32, ld, rows, k int) bool {
	if rows == 6 && w == 6 && transpose8Fits(k) {
		transposeBlocks6(panel, src, ld, k)
		return true
	}
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

// transposeBlocks6 is transposeBlocks for a panel of six rows (the AVX2
// 6×16 tile's), k at least 8: in blocks of eight steps, the last moved
// back to end at k. In Go (four rows at a time, then the other two one at
// a time) a block of 258×256 of op(A) packed 2.2× slower, and the
// products of 512×288 with 288 or 768 steps (NT, NN) ran 2–4% slower.
func transposeBlocks6(panel []float32, src []float32, ld, k int) {
	_ = src[5*ld+k-1]
	_ = panel[k*6-1]
	k8 := k &^ 7
	transpose6AVX(&panel[0], &src[0], ld, k8)
	if k8 < k {
		transpose6AVX(&panel[(k-8)*6], &src[k-8], ld, 8)
	}
}

// transpose6AVX writes dst[p·6+i] = src[i·ld+p] for i < 6 and p < k, k a
// positive multiple of 8.
//
//go:noescape
func transpose6AVX(dst *float32, src *float32, ld int, k int)

// transpose8AVX writes dst[p·w+i] = src[i·ld+p] for i < 8 and p < k, k a
// positive multiple of 8.
//
//go:noescape
func transpose8AVX(dst *float32, w int, src *float32, ld int, k int)

// mergeBlocksT does mergeTileT's work with the 8×8 block transpose when
// rows and cols are multiples of 8, and reports whether it did. (Blocks may
// not overlap here as in transposeBlocks: a merge adds.)
func mergeBlocksT(t []float32, ldt, rows, cols int, beta float32, c []float32, ldc int) bool {
	if !useTranspose8 || rows == 0 || cols == 0 || rows%8 != 0 || cols%8 != 0 {
		return false
	}
	_ = t[(rows-1)*ldt+cols-1]
	_ = c[(cols-1)*ldc+rows-1]
	for i := 0; i < rows; i += 8 {
		transposeMerge8AVX(&c[i], ldc, &t[i*ldt], ldt, cols, beta)
	}
	return true
}

// transposeMerge8AVX writes dst[p·w+i] = src[i·ld+p] + beta·dst[p·w+i] for
// i < 8 and p < k, k a positive multiple of 8, not reading dst when beta's
// bits are zero.
//
//go:noescape
func transposeMerge8AVX(dst *float32, w int, src *float32, ld int, k int, beta float32)

// usePackRuns selects the AVX-512 masked moves for packing runs of
// elements; set once at start-up from the CPU features (capped by
// GOLORA_KERNELS).
var usePackRuns = cpu.Best() >= cpu.AVX512

// copyRuns writes dst[p·dstStride+i] = src[p·srcStride+i] for i < n and
// zeros for n ≤ i < w, for p < k, when it can do so with masked vector
// moves (AVX-512, w ≤ 48), and reports whether it did: copy would call
// memmove for every run of a few dozen bytes.
func copyRuns(dst []float32, dstStride int, src []float32, srcStride, n, w, k int) bool {
	if !usePackRuns || w > 48 || n > w || n == 0 {
		return false
	}
	if k == 0 {
		return true
	}
	_ = src[(k-1)*srcStride+n-1]
	_ = dst[(k-1)*dstStride+w-1]
	packRunsAVX512(&dst[0], dstStride, &src[0], srcStride, k, 1<<n-1, 1<<w-1)
	return true
}

// packRunsAVX512 writes, for p < k, the elements of src[p·ld:] whose bits
// are set in load to dst[p·dw:], and zeros for the bits set in store and
// not in load; elements outside store are not written.
//
//go:noescape
func packRunsAVX512(dst *float32, dw int, src *float32, ld int, k int, load, store uint64)
