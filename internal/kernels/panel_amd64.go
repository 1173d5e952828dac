package kernels

// mulPanel is mulPanelGo, six rows of w at a time in AVX-512 where the CPU
// has it (a remnant of fewer rows goes through the Go loop).
func mulPanel(t, w []float32, rows int, xp []float32, in int) {
	if !expUseAVX512 || rows < panelRows || in == 0 {
		mulPanelGo(t, w, rows, xp, in)
		return
	}
	_, _ = w[panelRows*in-1], xp[PanelWidth*in-1]
	_ = t[panelRows*PanelWidth-1]
	mulPanel6AVX512(&t[0], &w[0], in, &xp[0])
}

// mulPanel6AVX512 writes into t [6, 32] the products of the six rows of w
// (in elements each, row after row) with the panel xp [in, 32]; in > 0.
//
//go:noescape
func mulPanel6AVX512(t *float32, w *float32, in int, xp *float32)
