//go:build !amd64

package kernels

func mulPanel(t, w []float32, rows int, xp []float32, in int) { mulPanelGo(t, w, rows, xp, in) }

func transposeBlock(u, t []float32, cols int) int { return 0 }

func packCols(panel, x []float32, in, lo, hi int) int { return 0 }
