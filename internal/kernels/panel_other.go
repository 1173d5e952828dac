//go:build !amd64

package kernels

func mulPanel(t, w []float32, rows int, xp []float32, in int) { mulPanelGo(t, w, rows, xp, in) }

func writeBack(y []float32, ldy int, t []float32, rows, cols int) { writeBackGo(y, ldy, t, rows, cols) }
