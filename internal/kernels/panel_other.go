//go:build !amd64

package kernels

// PanelMinRows is 4: the pure-Go loop is not measured against per-row
// products (see panel_amd64.go).
func PanelMinRows() int { return 4 }

func mulPanel(t, w []float32, rows int, xp []float32, in int) { mulPanelGo(t, w, rows, xp, in) }

func transposeBlock(u, t []float32, cols int) int { return 0 }

func packCols(panel, x []float32, in, lo, hi int) int { return 0 }

func writeBlockRows(row func(i int) []float32, first, rows, o0 int, t []float32, cols int) bool {
	return false
}
