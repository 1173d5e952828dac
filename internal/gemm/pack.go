package gemm

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
			for p := range kc {
				src := a[(p0+p)*lda+i0+r:]
				copy(panel[p*mr:p*mr+rows], src[:rows])
				clear(panel[p*mr+rows : p*mr+mr])
			}
			continue
		}
		for i := range rows {
			src := a[(i0+r+i)*lda+p0:]
			src = src[:kc]
			for p, v := range src {
				panel[p*mr+i] = v
			}
		}
		for i := rows; i < mr; i++ {
			for p := range kc {
				panel[p*mr+i] = 0
			}
		}
	}
}

// packB copies rows [p0, p0+kc) and columns [j0, j0+nc) of op(B) into dst as
// panels of nr columns: panel c holds, for each p, the nr elements of row p
// of its columns, consecutively. The last panel is padded with zeros to nr
// columns.
func packB(dst []float32, transB bool, b []float32, ldb, p0, kc, j0, nc, nr int) {
	for c := 0; c < nc; c += nr {
		cols := min(nr, nc-c)
		panel := dst[c*kc : c*kc+nr*kc]
		if !transB {
			for p := range kc {
				src := b[(p0+p)*ldb+j0+c:]
				copy(panel[p*nr:p*nr+cols], src[:cols])
				clear(panel[p*nr+cols : p*nr+nr])
			}
			continue
		}
		// Stored n×k: column j of op(B) is row j of B; read it contiguously.
		for j := range cols {
			src := b[(j0+c+j)*ldb+p0:]
			src = src[:kc]
			for p, v := range src {
				panel[p*nr+j] = v
			}
		}
		for j := cols; j < nr; j++ {
			for p := range kc {
				panel[p*nr+j] = 0
			}
		}
	}
}
