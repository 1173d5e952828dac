package kernels

// PanelWidth is the number of rows of x a packed panel holds (PackPanels):
// the columns of the tile MulTPanels computes per weight row, two AVX-512
// registers.
const PanelWidth = 32

// panelRows is the number of weight rows the smaller AVX-512 kernel runs at
// once: 6 rows × 2 registers are the 12 accumulators that keep both FMA
// units busy through the FMA latency. The AVX2 kernel runs 6 rows too, 16
// columns (2 ymm registers) at a time.
const panelRows = 6

// PanelsLen returns the length of the packed panels of n rows of width in.
func PanelsLen(n, in int) int { return (n + PanelWidth - 1) / PanelWidth * PanelWidth * in }

// PackPanels transposes x [n, in] into panels of PanelWidth rows for
// MulTPanels: panel p holds rows [32p, 32p+32) as [in, 32], zero where
// there is no row. dst has PanelsLen(n, in) elements.
func PackPanels(dst, x []float32, n, in int) { PackPanelsCols(dst, x, n, in, 0, in) }

// PackPanelsCols is the part of PackPanels for columns [lo, hi) of x: the
// elements of the panels it writes do not overlap another range's, so
// ranges can be packed concurrently.
func PackPanelsCols(dst, x []float32, n, in, lo, hi int) {
	dst = dst[:PanelsLen(n, in)]
	for p := 0; p*PanelWidth < n; p++ {
		panel := dst[p*PanelWidth*in : (p+1)*PanelWidth*in]
		rows := min(PanelWidth, n-p*PanelWidth)
		done := lo
		if rows < PanelWidth {
			clear(panel[lo*PanelWidth : hi*PanelWidth])
		} else {
			done += packCols(panel, x[p*PanelWidth*in:(p+1)*PanelWidth*in], in, lo, hi)
		}
		for j := range rows {
			xr := x[(p*PanelWidth+j)*in+done : (p*PanelWidth+j)*in+hi]
			for k, v := range xr {
				panel[(done+k)*PanelWidth+j] = v
			}
		}
	}
}

// MulTPanels computes y[i·ldy + o] = Σ_k x[i, k]·w[o·in + k] for the n rows
// of x packed in panels (PackPanels) and the out rows of w [out, in]: a
// block of columns of y = x·wᵀ. Each element of w is read once per panel
// of 32 rows of x, straight from w's rows (no packing of w), so a batch of
// rows costs one pass over the weights. Sums run over k in order, in
// float32. scratch holds at least MulTPanelsScratch elements; the call does
// not allocate.
func MulTPanels(y []float32, ldy int, panels []float32, n int, w []float32, in, out int, scratch []float32) {
	mulTPanels(func(i int) []float32 { return y[i*ldy:] }, panels, n, w, in, out, scratch)
}

// MulTPanelsRows is MulTPanels writing row i of y into ys[i][off:off+out]
// instead of one matrix: the rows of x's product go straight to buffers of
// their own (logits of different requests), with no copy of a whole y.
// len(ys) is at least n.
func MulTPanelsRows(ys [][]float32, off int, panels []float32, n int, w []float32, in, out int, scratch []float32) {
	mulTPanels(func(i int) []float32 { return ys[i][off:] }, panels, n, w, in, out, scratch)
}

// mulTPanels is MulTPanels writing row i of y = x·wᵀ at row(i).
func mulTPanels(row func(i int) []float32, panels []float32, n int, w []float32, in, out int, scratch []float32) {
	t, u := scratch[:blockLen], scratch[blockLen:MulTPanelsScratch]
	for p := 0; p*PanelWidth < n; p++ {
		xp := panels[p*PanelWidth*in : (p+1)*PanelWidth*in]
		rows := min(PanelWidth, n-p*PanelWidth)
		for o0 := 0; o0 < out; o0 += panelBlock {
			o1 := min(out, o0+panelBlock)
			mulPanel(t[:(o1-o0)*PanelWidth], w[o0*in:o1*in], o1-o0, xp, in)
			if writeBlockRows(row, p*PanelWidth, rows, o0, t, o1-o0) {
				continue
			}
			c := transposeBlock(u, t, o1-o0)
			for j := range rows {
				writeRow(row(p*PanelWidth + j)[o0:], t, u, j, c, o1-o0)
			}
		}
	}
}

// writeRow writes row j of a block t [cols, 32] (columns of y, transposed)
// into yr: its first c columns from u, where transposeBlock put them
// ([32, c]), the rest from t.
func writeRow(yr, t, u []float32, j, c, cols int) {
	yr = yr[:cols]
	copy(yr, u[j*c:(j+1)*c])
	for r := c; r < cols; r++ {
		yr[r] = t[r*PanelWidth+j]
	}
}

// panelBlock is the number of columns of y MulTPanels computes before
// writing them back: a multiple of panelRows, 24 KiB of results.
const panelBlock = 32 * panelRows

// blockLen is the size of a block of results, [panelBlock, 32].
const blockLen = panelBlock * PanelWidth

// MulTPanelsScratch is the scratch MulTPanels needs: a block of results and
// its transpose.
const MulTPanelsScratch = 2 * blockLen

// mulPanelGo writes t[r·32 + j] = Σ_k w[r·in + k]·xp[k·32 + j] for the
// rows of w.
func mulPanelGo(t, w []float32, rows int, xp []float32, in int) {
	for r := range rows {
		var acc [PanelWidth]float32
		wr := w[r*in : (r+1)*in]
		for k, wv := range wr {
			xk := (*[PanelWidth]float32)(xp[k*PanelWidth:])
			for j := range acc {
				acc[j] += wv * xk[j]
			}
		}
		copy(t[r*PanelWidth:], acc[:])
	}
}
