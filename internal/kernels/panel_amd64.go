package kernels

// mulPanel is mulPanelGo in assembly where the CPU has it: AVX-512 twelve
// rows of w at a time, then six; AVX2 six at a time. A remnant of fewer rows
// goes through the Go loop.
func mulPanel(t, w []float32, rows int, xp []float32, in int) {
	switch {
	case in == 0 || rows < panelRows:
		mulPanelGo(t, w, rows, xp, in)
	case useAVX512:
		mulPanelAVX512(t, w, rows, xp, in)
	case useAVX2:
		mulPanelAVX2(t, w, rows, xp, in)
	default:
		mulPanelGo(t, w, rows, xp, in)
	}
}

// PanelMinRows returns the fewest rows of x for which MulTPanels (one
// pass over w for a whole panel of 32 rows, padding included) beats a
// matrix-vector product per row, with the kernels this CPU runs. Measured
// on model/infer's BenchmarkBatchDecode (stories15M shapes, NF4): 4 with
// AVX-512; 7 with AVX2, where per-row products ran 25-40% faster at 4 rows,
// about as fast at 6, and 8 rows ran 45% faster through the panels. The
// pure-Go loop keeps 4 (not measured).
func PanelMinRows() int {
	if useAVX2 && !useAVX512 {
		return 7
	}
	return 4
}

// mulPanelAVX512 is mulPanel on the AVX-512 kernels; in > 0.
func mulPanelAVX512(t, w []float32, rows int, xp []float32, in int) {
	_ = xp[PanelWidth*in-1]
	for ; rows >= 2*panelRows; rows -= 2 * panelRows {
		_, _ = w[2*panelRows*in-1], t[2*panelRows*PanelWidth-1]
		mulPanel12AVX512(&t[0], &w[0], in, &xp[0])
		t, w = t[2*panelRows*PanelWidth:], w[2*panelRows*in:]
	}
	if rows >= panelRows {
		_, _ = w[panelRows*in-1], t[panelRows*PanelWidth-1]
		mulPanel6AVX512(&t[0], &w[0], in, &xp[0])
		t, w, rows = t[panelRows*PanelWidth:], w[panelRows*in:], rows-panelRows
	}
	if rows > 0 {
		mulPanelGo(t, w, rows, xp, in)
	}
}

// mulPanelAVX2 is mulPanel on the AVX2 kernel; in > 0.
func mulPanelAVX2(t, w []float32, rows int, xp []float32, in int) {
	_ = xp[PanelWidth*in-1]
	for ; rows >= panelRows; rows -= panelRows {
		_, _ = w[panelRows*in-1], t[panelRows*PanelWidth-1]
		mulPanel6AVX2(&t[0], &w[0], in, &xp[0])
		t, w = t[panelRows*PanelWidth:], w[panelRows*in:]
	}
	if rows > 0 {
		mulPanelGo(t, w, rows, xp, in)
	}
}

// mulPanel6AVX512 writes into t [6, 32] the products of the six rows of w
// (in elements each, row after row) with the panel xp [in, 32]; in > 0.
//
//go:noescape
func mulPanel6AVX512(t *float32, w *float32, in int, xp *float32)

// mulPanel12AVX512 is mulPanel6AVX512 for twelve rows of w (t is [12, 32]).
//
//go:noescape
func mulPanel12AVX512(t *float32, w *float32, in int, xp *float32)

// mulPanel6AVX2 is mulPanel6AVX512 in AVX2 with FMA: the same products,
// the same fused multiply-adds in the same order, so the same bits.
//
//go:noescape
func mulPanel6AVX2(t *float32, w *float32, in int, xp *float32)

// transposeBlock writes the first c columns of the block t [cols, 32]
// (columns of y, transposed) into u as y's 32 rows [32, c] and returns c,
// the columns that fill whole squares of transposeSide (0 without a
// transpose kernel: writeRow then does all the columns).
func transposeBlock(u, t []float32, cols int) int {
	b := transposeSide()
	if b == 0 || cols < b {
		return 0
	}
	c := cols / b * b
	_, _ = u[PanelWidth*c-1], t[c*PanelWidth-1]
	transposeSquares(b, u, c, t, PanelWidth, 0, PanelWidth, 0, c)
	return c
}

// packCols packs columns [lo, lo+c) of a full panel's 32 rows of x
// [32, in] into panel [in, 32] and returns c, the columns of [lo, hi) that
// fill whole squares of transposeSide (0 without a transpose kernel: the
// caller packs the rest).
func packCols(panel, x []float32, in, lo, hi int) int {
	b := transposeSide()
	if b == 0 || hi-lo < b {
		return 0
	}
	c := (hi - lo) / b * b
	_, _ = panel[(lo+c)*PanelWidth-1], x[(PanelWidth-1)*in+lo+c-1]
	transposeSquares(b, panel, PanelWidth, x, in, lo, lo+c, 0, PanelWidth)
	return c
}

// transposeSide is the side of the squares the transpose kernel moves: 16
// in AVX-512 registers, 8 in AVX2 ones, 0 without either.
func transposeSide() int {
	switch {
	case useAVX512:
		return 16
	case useAVX2:
		return 8
	}
	return 0
}

// transposeSquares writes dst[p·ldd + q] = src[q·lds + p] for p in [p0, p1)
// and q in [q0, q1), both spans multiples of b = transposeSide(), one b×b
// square per kernel call.
func transposeSquares(b int, dst []float32, ldd int, src []float32, lds, p0, p1, q0, q1 int) {
	for p := p0; p < p1; p += b {
		for q := q0; q < q1; q += b {
			if b == 16 {
				transpose16AVX512(&dst[p*ldd+q], ldd, &src[q*lds+p], lds)
			} else {
				transpose8AVX2(&dst[p*ldd+q], ldd, &src[q*lds+p], lds)
			}
		}
	}
}

// transpose16AVX512 writes dst[m·ldd + i] = src[i·lds + m] for i, m < 16.
//
//go:noescape
func transpose16AVX512(dst *float32, ldd int, src *float32, lds int)

// transpose8AVX2 writes dst[m·ldd + i] = src[i·lds + m] for i, m < 8.
//
//go:noescape
func transpose8AVX2(dst *float32, ldd int, src *float32, lds int)

// writeBlockRows writes a block t [cols, 32] (columns o0… of y, transposed)
// into rows first … first+rows−1 of y, row(i)[o0:o0+cols], and reports
// whether it did: with AVX2 (and not AVX-512, whose 16-wide transposes
// go through transposeBlock), eight rows at a time straight into their
// destinations (transpose8RowsAVX2). Through transposeBlock's [32, c]
// block and a copy per row, the writes of an output head's 32 rows of
// logits (32000×288) took 10% of its product's time on one core; straight,
// 3-5%.
func writeBlockRows(row func(i int) []float32, first, rows, o0 int, t []float32, cols int) bool {
	if !useAVX2 || useAVX512 {
		return false
	}
	c := cols / 8 * 8
	var dst [8]*float32
	j := 0
	for ; j+8 <= rows; j += 8 {
		for m := range dst {
			yr := row(first + j + m)[o0 : o0+cols]
			dst[m] = &yr[0]
			for r := c; r < cols; r++ {
				yr[r] = t[r*PanelWidth+j+m]
			}
		}
		if c > 0 {
			_ = t[(c-8)*PanelWidth+j+7+7*PanelWidth]
			for r := 0; r < c; r += 8 {
				transpose8RowsAVX2(&dst, r, &t[r*PanelWidth+j], PanelWidth)
			}
		}
	}
	for ; j < rows; j++ {
		writeRow(row(first + j)[o0:], t, nil, j, 0, cols)
	}
	return true
}

// transpose8RowsAVX2 writes dst[m][off + i] = src[i·lds + m] for i, m < 8.
//
//go:noescape
func transpose8RowsAVX2(dst *[8]*float32, off int, src *float32, lds int)
