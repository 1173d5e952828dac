package nf4

import (
	"github.com/golora/golora/internal/cpu"
	"github.com/golora/golora/internal/kernels"
)

// The quantization kernels (quantize_amd64.s) encode whole blocks, 32
// weights per step: block sizes are multiples of 32. A partial last block
// goes to the scalar code. A call covers at most quantizeChunk weights, so it
// returns within tens of microseconds (assembly is not preemptible).

// quantizeAVX512 computes the absmax and the codes of blocks whole blocks of
// blockGroups·32 weights at w, writing absmax[:blocks] and
// packed[:blocks·blockGroups·16]. It stops at the first block whose absmax
// bits are those of ±Inf or NaN and returns its index (its absmax and codes
// are not written), or returns blocks.
//
//go:noescape
func quantizeAVX512(packed *byte, absmax *float32, w *float32, blocks, blockGroups int, tables *[4][8]float32) int

// quantizeAVX2 is quantizeAVX512 with AVX2.
//
//go:noescape
func quantizeAVX2(packed *byte, absmax *float32, w *float32, blocks, blockGroups int, tables *[4][8]float32) int

// searchTables are the midpoints of the kernels' binary search on h =
// code/2 (see quantize_amd64.s): row 0 is midpoint 7 (the first step), and
// rows 1, 2, 3 give, at index h, midpoints 2h+3, 2h+1 and 2h: the thresholds
// of the second, third and fourth steps. Entries the search never reads are
// clamped to midpoint 14.
var searchTables = func() (t [4][8]float32) {
	for h := range 8 {
		t[0][h] = midpoints[7]
		t[1][h] = midpoints[min(2*h+3, 14)]
		t[2][h] = midpoints[min(2*h+1, 14)]
		t[3][h] = midpoints[2*h]
	}
	return t
}()

// quantizeBlocksRangeAt is quantizeBlocksRangeScalar with the kernels of
// level l.
func quantizeBlocksRangeAt(l cpu.Level, packed []byte, absmax []float32, w []float32, blockSize int) int {
	whole := len(w) / blockSize
	if l == cpu.Generic || whole == 0 {
		return quantizeBlocksRangeScalar(packed, absmax, w, blockSize)
	}
	// Bounds checks before handing pointers to assembly.
	_ = packed[whole*blockSize/2-1]
	_ = absmax[whole-1]
	step := max(1, quantizeChunk/blockSize)
	for b0 := 0; b0 < whole; b0 += step {
		n := min(step, whole-b0)
		lo := b0 * blockSize
		var done int
		if l >= cpu.AVX512 {
			done = quantizeAVX512(&packed[lo/2], &absmax[b0], &w[lo], n, blockSize/lanes, &searchTables)
		} else {
			done = quantizeAVX2(&packed[lo/2], &absmax[b0], &w[lo], n, blockSize/lanes, &searchTables)
		}
		if done < n {
			bad := (b0 + done) * blockSize
			return bad + kernels.FirstNonFinite(w[bad:bad+blockSize])
		}
	}
	if tail := whole * blockSize; tail < len(w) {
		if i := quantizeBlocksRangeScalar(packed[tail/2:], absmax[whole:], w[tail:], blockSize); i >= 0 {
			return tail + i
		}
	}
	return -1
}
