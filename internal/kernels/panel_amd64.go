package kernels

// mulPanel is mulPanelGo in AVX-512 where the CPU has it: twelve rows of w
// at a time, then six; a remnant of fewer rows goes through the Go loop.
func mulPanel(t, w []float32, rows int, xp []float32, in int) {
	if !expUseAVX512 || in == 0 {
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

// gatherIndex is writeBackAVX512's column of t: 16 rows 32 floats apart.
var gatherIndex = [16]int32{0, 32, 64, 96, 128, 160, 192, 224, 256, 288, 320, 352, 384, 416, 448, 480}

// writeBack copies the block t [cols, 32] (columns of y, transposed) into
// rows [0, rows) of y: with AVX-512 gathers, 16 entries of y at a time.
func writeBack(y []float32, ldy int, t []float32, rows, cols int) {
	done := 0
	if expUseAVX512 && cols >= 16 && rows > 0 {
		chunks := cols / 16
		_, _ = y[(rows-1)*ldy+chunks*16-1], t[(chunks*16-1)*PanelWidth+rows-1]
		writeBackAVX512(&y[0], ldy, &t[0], rows, chunks, &gatherIndex[0])
		done = chunks * 16
	}
	if done < cols {
		writeBackGo(y[done:], ldy, t[done*PanelWidth:], rows, cols-done)
	}
}

// writeBackAVX512 writes y[j·ldy + o] = t[o·32 + j] for j < rows and
// o < 16·chunks; rows, chunks > 0.
//
//go:noescape
func writeBackAVX512(y *float32, ldy int, t *float32, rows, chunks int, idx *int32)
