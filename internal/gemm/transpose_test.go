package gemm

import "testing"

// TestTransposeMatchesDefinition checks transpose, with the block kernel
// where the CPU has it, against its definition on shapes that hit whole
// blocks, overlapping last blocks of rows and of steps, whole panels of
// six rows (their own block kernel), and rows < 8 or k < 8 (scalar only);
// the padding rows must be zeros.
func TestTransposeMatchesDefinition(t *testing.T) {
	for _, rows := range []int{1, 6, 7, 8, 9, 14, 16, 31, 32} {
		for _, k := range []int{1, 7, 8, 9, 15, 16, 17, 100} {
			for _, w := range []int{rows, rows + 3} {
				ld := k + 5
				src := make([]float32, rows*ld)
				for i := range src {
					src[i] = float32(i + 1)
				}
				panel := make([]float32, k*w)
				for i := range panel {
					panel[i] = -1
				}
				transpose(panel, w, src, ld, rows, k)
				for p := range k {
					for i := range w {
						want := float32(0)
						if i < rows {
							want = src[i*ld+p]
						}
						if got := panel[p*w+i]; got != want {
							t.Fatalf("rows %d k %d w %d: panel[%d·w+%d] = %v, want %v", rows, k, w, p, i, got, want)
						}
					}
				}
			}
		}
	}
}
