package gemm

// The packing routines run once per element of a block, against only mr or
// nr multiply-adds per element in the micro-kernel, so their memory access
// matters: where they transpose, they go through the panel in strips of
// strip steps of the inner dimension, so that the cache lines being written
// (strip of them) stay in L1 while every row of the source passes.
const strip = 16

// packA copies rows [i0, i0+mc) and columns [p0, p0+kc) of op(A) into dst as
// panels of mr rows: panel r holds, for each p, the mr elements of column p
// of its rows, consecutively. The last panel is padded with zeros to mr rows,
// so the micro-kernel never needs to know about the edge.
func packA(dst []float32, transA bool, a []float32, lda, i0, mc, p0, kc, mr int) {
	for r := 0; r < mc; r += mr {
		rows := min(mr, mc-r)
		panel := dst[r*kc : r*kc+mr*kc]
		if transA {
			// Stored k×m: column p of op(A) is row p of A, so each step copies
			// a contiguous run.
			src := a[p0*lda+i0+r:]
			if copyRuns(panel, mr, src, lda, rows, mr, kc) || rows == mr && copyWhole(panel, mr, src, lda, mr, kc) {
				continue
			}
			for p := range kc {
				copy(panel[p*mr:p*mr+rows], src[p*lda:p*lda+rows])
				clear(panel[p*mr+rows : p*mr+mr])
			}
			continue
		}
		transpose(panel, mr, a[(i0+r)*lda+p0:], lda, rows, kc)
	}
}

// packB copies rows [p0, p0+kc) and columns [j0, j0+nc) of op(B) into dst as
// panels of nr columns: panel c holds, for each p, the nr elements of row p
// of its columns, consecutively. The last panel is padded with zeros to nr
// columns. A Source first writes the block into w's scratch, from which it
// is packed like a slice: the panels, and so the product, come out the same.
// The scratch holds a small part of the block at a time (one panel's columns,
// or a strip of rows), so that it stays in L1 between being written and being
// packed instead of pushing the panels out of L2.
func packB(w *workspace, dst []float32, transB bool, b matB, p0, kc, j0, nc, nr int) {
	if b.src == nil {
		packSliceB(dst, transB, b.data, b.ld, p0, kc, j0, nc, nr)
		return
	}
	if transB {
		// Stored n×k: one panel's nr rows of B, kc long, at a time, or, for
		// a whole panel that the 8×8 transpose packs, eight rows at a time:
		// the 32 rows of the widest tile's panel, 384 long, would fill L1
		// and be transposed from L2.
		for c := 0; c < nc; c += nr {
			cols := min(nr, nc-c)
			r := b.r0 + j0 + c
			if cols == nr && nr%8 == 0 && transpose8Fits(kc) {
				panel := dst[c*kc : c*kc+nr*kc]
				for i := 0; i < nr; i += 8 {
					b.src.Block(w.src, kc, r+i, r+i+8, b.c0+p0, b.c0+p0+kc)
					transposeBlocks(panel[i:], nr, w.src, kc, 8, kc)
				}
				continue
			}
			b.src.Block(w.src, kc, r, r+cols, b.c0+p0, b.c0+p0+kc)
			packSliceB(dst[c*kc:], true, w.src, kc, 0, kc, 0, cols, nr)
		}
		return
	}
	// Stored k×n: strips of rows, each the whole width nc, so that every call
	// decodes runs as long as a row of the block.
	rows := max(1, min(kc, packStripElems/nc))
	for p := 0; p < kc; p += rows {
		n := min(rows, kc-p)
		b.src.Block(w.src, nc, b.r0+p0+p, b.r0+p0+p+n, b.c0+j0, b.c0+j0+nc)
		packRowsB(dst, kc, w.src, nc, p, n, nc, nr)
	}
}

// packStripElems is the size of the scratch strip of a Source's block that
// packB fills at a time: 32 KiB, well inside L1.
const packStripElems = 8192

// packRowsB packs rows [p, p+n) of a kc×nc block of op(B), held row-major in
// src with leading dimension ld starting at row p, into the panels of dst
// (laid out as packSliceB lays out the whole block).
func packRowsB(dst []float32, kc int, src []float32, ld, p, n, nc, nr int) {
	for c := 0; c < nc; c += nr {
		cols := min(nr, nc-c)
		panel := dst[c*kc : c*kc+nr*kc]
		if cols == 32 && nr == 32 {
			// The widest tile's full panels: fixed-size moves, inlined,
			// instead of a call to memmove for every 128 bytes.
			for q := range n {
				*(*[32]float32)(panel[(p+q)*32:]) = *(*[32]float32)(src[q*ld+c:])
			}
			continue
		}
		if copyRuns(panel[p*nr:], nr, src[c:], ld, cols, nr, n) || cols == nr && copyWhole(panel[p*nr:], nr, src[c:], ld, nr, n) {
			continue
		}
		for q := range n {
			row := panel[(p+q)*nr : (p+q)*nr+nr]
			copy(row[:cols], src[q*ld+c:q*ld+c+cols])
			clear(row[cols:])
		}
	}
}

// copyWhole writes dst[p·dstStride+i] = src[p·srcStride+i] for i < w and
// p < k with moves of fixed size when w is a side of an AVX2 tile (6, 8,
// 12 or 16), and reports whether it did. copy would call memmove for every
// run of 24 to 64 bytes, which cost more than the move itself: in packing
// a transposed op(A) into panels of 6 rows, or op(B) into panels of 16
// columns, memmove took as long as the packing loop around it. (Each run
// goes through a local array: assigned directly, an array of more than 24
// bytes is moved by memmove too, the compiler not knowing that the two do
// not overlap.)
func copyWhole(dst []float32, dstStride int, src []float32, srcStride, w, k int) bool {
	switch w {
	case 6:
		// 16 bytes and 8 rather than two overlapping moves of 16, which
		// the compiler makes of a 24-byte array and which packed three
		// times slower than memmove.
		for p := range k {
			d, s := dst[p*dstStride:p*dstStride+6], src[p*srcStride:p*srcStride+6]
			*(*[4]float32)(d) = *(*[4]float32)(s)
			*(*[2]float32)(d[4:]) = *(*[2]float32)(s[4:])
		}
	case 8:
		for p := range k {
			v := *(*[8]float32)(src[p*srcStride:])
			*(*[8]float32)(dst[p*dstStride:]) = v
		}
	case 12:
		for p := range k {
			v := *(*[12]float32)(src[p*srcStride:])
			*(*[12]float32)(dst[p*dstStride:]) = v
		}
	case 16:
		for p := range k {
			v := *(*[16]float32)(src[p*srcStride:])
			*(*[16]float32)(dst[p*dstStride:]) = v
		}
	default:
		return false
	}
	return true
}

// packSliceB is packB from a slice holding B with leading dimension ldb.
func packSliceB(dst []float32, transB bool, b []float32, ldb, p0, kc, j0, nc, nr int) {
	if !transB {
		packRowsB(dst, kc, b[p0*ldb+j0:], ldb, 0, kc, nc, nr)
		return
	}
	// Stored n×k: column j of op(B) is row j of B.
	for c := 0; c < nc; c += nr {
		cols := min(nr, nc-c)
		transpose(dst[c*kc:c*kc+nr*kc], nr, b[(j0+c)*ldb+p0:], ldb, cols, kc)
	}
}

// transpose writes panel[p·w+i] = src[i·ld+p] for i < rows and p < k, and
// zeros for rows ≤ i < w: rows rows of the source, k long, become k steps of
// w elements. Four rows go at a time, so that each step writes four adjacent
// elements.
func transpose(panel []float32, w int, src []float32, ld, rows, k int) {
	panel = panel[:k*w]
	if transposeBlocks(panel, w, src, ld, rows, k) {
		// Only a panel with padding rows has any to clear: the loop over
		// the steps, clearing nothing, took half as long as transposing a
		// whole panel of six rows.
		for p := 0; p < k && rows < w; p++ {
			clear(panel[p*w+rows : p*w+w])
		}
		return
	}
	for s := 0; s < k; s += strip {
		n := min(strip, k-s)
		i := 0
		for ; i+4 <= rows; i += 4 {
			r0 := src[i*ld+s : i*ld+s+n]
			r1 := src[(i+1)*ld+s : (i+1)*ld+s+n]
			r2 := src[(i+2)*ld+s : (i+2)*ld+s+n]
			r3 := src[(i+3)*ld+s : (i+3)*ld+s+n]
			for p := range r0 {
				out := panel[(s+p)*w+i : (s+p)*w+i+4 : (s+p)*w+i+4]
				out[0], out[1], out[2], out[3] = r0[p], r1[p], r2[p], r3[p]
			}
		}
		for ; i < rows; i++ {
			row := src[i*ld+s : i*ld+s+n]
			for p, v := range row {
				panel[(s+p)*w+i] = v
			}
		}
		for ; i < w; i++ {
			for p := range n {
				panel[(s+p)*w+i] = 0
			}
		}
	}
}
