package kernels

// mulPanel is mulPanelGo in AVX-512 where the CPU has it: twelve rows of w
// at a time, then six; a remnant of fewer rows goes through the Go loop.
func mulPanel(t, w []float32, rows int, xp []float32, in int) {
	if !useAVX512 || in == 0 {
		mulPanelGo(t, w, rows, xp, in)
		return
	}
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

// mulPanel6AVX512 writes into t [6, 32] the products of the six rows of w
// (in elements each, row after row) with the panel xp [in, 32]; in > 0.
//
//go:noescape
func mulPanel6AVX512(t *float32, w *float32, in int, xp *float32)

// mulPanel12AVX512 is mulPanel6AVX512 for twelve rows of w (t is [12, 32]).
//
//go:noescape
func mulPanel12AVX512(t *float32, w *float32, in int, xp *float32)

// transposeBlock writes the first c16 = cols/16·16 columns of the block t
// [cols, 32] (columns of y, transposed) into u as y's 32 rows [32, c16], 16×16
// at a time in AVX-512 registers, and returns c16; 0 without AVX-512.
func transposeBlock(u, t []float32, cols int) int {
	c16 := cols / 16 * 16
	if !useAVX512 || c16 == 0 {
		return 0
	}
	_, _ = u[PanelWidth*c16-1], t[c16*PanelWidth-1]
	for j0 := 0; j0 < PanelWidth; j0 += 16 {
		for i0 := 0; i0 < c16; i0 += 16 {
			transpose16AVX512(&u[j0*c16+i0], c16, &t[i0*PanelWidth+j0], PanelWidth)
		}
	}
	return c16
}

// packCols packs columns [lo, lo+c16) of a full panel's 32 rows of x
// [32, in] into panel [in, 32] 16×16 at a time in AVX-512 registers and
// returns c16 = (hi−lo)/16·16; 0 without AVX-512.
func packCols(panel, x []float32, in, lo, hi int) int {
	c16 := (hi - lo) / 16 * 16
	if !useAVX512 || c16 == 0 {
		return 0
	}
	_, _ = panel[(lo+c16)*PanelWidth-1], x[(PanelWidth-1)*in+lo+c16-1]
	for j0 := 0; j0 < PanelWidth; j0 += 16 {
		for k0 := lo; k0 < lo+c16; k0 += 16 {
			transpose16AVX512(&panel[k0*PanelWidth+j0], PanelWidth, &x[j0*in+k0], in)
		}
	}
	return c16
}

// transpose16AVX512 writes dst[m·ldd + i] = src[i·lds + m] for i, m < 16.
//
//go:noescape
func transpose16AVX512(dst *float32, ldd int, src *float32, lds int)
