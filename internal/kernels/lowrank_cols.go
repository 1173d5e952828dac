package kernels

import "github.com/golora/golora/internal/half"

// LowRankExpandCols adds columns [lo, hi) of LowRankExpand's term to
// y[:hi−lo]: Σ_k s[k]·bt[k·ld+lo : k·ld+hi] for k < r, with bt [r, ld]. A
// product split by columns adds its own columns' term with it. With lo a
// multiple of 16, and hi one too or ld, the sums are LowRankExpand's (on
// rows of length ld), bit for bit.
func LowRankExpandCols(y, s, bt []float32, r, ld, lo, hi int) {
	if r == 0 || lo >= hi {
		return
	}
	n := hi - lo
	y, s, bt = y[:n], s[:r], bt[lo:(r-1)*ld+hi]
	done := lowRankExpandColsVec(y, s, bt, nil, n, ld)
	for o := done; o < n; o++ {
		var sum float32
		for k, v := range s {
			sum += v * bt[k*ld+o]
		}
		y[o] += sum
	}
}

// LowRankExpandColsF16 is LowRankExpandCols with bt in binary16.
func LowRankExpandColsF16(y, s []float32, bt []uint16, r, ld, lo, hi int) {
	if r == 0 || lo >= hi {
		return
	}
	n := hi - lo
	y, s, bt = y[:n], s[:r], bt[lo:(r-1)*ld+hi]
	done := lowRankExpandColsVec(y, s, nil, bt, n, ld)
	for o := done; o < n; o++ {
		var sum float32
		for k, v := range s {
			sum += v * half.F16ToFloat32(bt[k*ld+o])
		}
		y[o] += sum
	}
}
