//go:build !amd64

package kernels

func mulPanel(t, w []float32, rows int, xp []float32, in int) { mulPanelGo(t, w, rows, xp, in) }
