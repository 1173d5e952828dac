package kernels

import (
	"math"
	"math/rand/v2"
	"testing"
)

// TestMulTPanels checks MulTPanels against a float64 triple loop for row
// counts below, at and above a panel, weight rows that are and are not a
// multiple of the kernel's six, and a block of columns written into a wider y.
func TestMulTPanels(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 7))
	for _, tc := range []struct{ n, in, out, ldy, col int }{
		{1, 16, 6, 6, 0}, {5, 48, 7, 7, 0}, {40, 64, 37, 50, 5}, {3, 32, 200, 203, 1}, {32, 288, 12, 12, 0}, {33, 100, 13, 20, 4}, {70, 288, 768, 768, 0}, {3, 1, 5, 5, 0},
	} {
		x := genRandomSlice(rng, tc.n*tc.in, 1)
		w := genRandomSlice(rng, tc.out*tc.in, 1)
		y := make([]float32, tc.n*tc.ldy)
		for i := range y {
			y[i] = -99
		}
		panels := make([]float32, PanelsLen(tc.n, tc.in))
		PackPanels(panels, x, tc.n, tc.in)
		MulTPanels(y[tc.col:], tc.ldy, panels, tc.n, w, tc.in, tc.out, make([]float32, MulTPanelsScratch))
		for i := range tc.n {
			for o := range tc.ldy {
				got := y[i*tc.ldy+o]
				if o < tc.col || o >= tc.col+tc.out {
					if got != -99 {
						t.Fatalf("%+v: y[%d, %d] outside the block was written", tc, i, o)
					}
					continue
				}
				var want, mag float64
				for k := range tc.in {
					p := float64(x[i*tc.in+k]) * float64(w[(o-tc.col)*tc.in+k])
					want += p
					mag += math.Abs(p)
				}
				if math.Abs(float64(got)-want) > 1e-5*mag+1e-6 {
					t.Fatalf("%+v: y[%d, %d] = %g, want %g", tc, i, o, got, want)
				}
			}
		}
	}
}

// TestMulPanelKernelMatchesGo checks mulPanel (the assembly kernels this
// CPU runs: AVX-512 12 rows, then 6, or AVX2 6 at a time; then a remnant in
// Go) against the Go loop they replace, within rounding: the Go loop
// multiplies and adds apart, the kernels fuse them.
func TestMulPanelKernelMatchesGo(t *testing.T) {
	rng := rand.New(rand.NewPCG(8, 8))
	const in, rows = 37, 3*panelRows + 3
	w := genRandomSlice(rng, rows*in, 1)
	xp := genRandomSlice(rng, in*PanelWidth, 1)
	got, want := make([]float32, rows*PanelWidth), make([]float32, rows*PanelWidth)
	mulPanel(got, w, rows, xp, in)
	mulPanelGo(want, w, rows, xp, in)
	for i := range got {
		if d := math.Abs(float64(got[i] - want[i])); d > 1e-5*(1+math.Abs(float64(want[i]))) {
			t.Fatalf("element %d: kernel %g, Go %g", i, got[i], want[i])
		}
	}
}

func BenchmarkMulTPanels(b *testing.B) {
	const n, in, out = 32, 288, 32000
	x, w := make([]float32, n*in), make([]float32, out*in)
	for i := range w {
		w[i] = float32(i%7) - 3
	}
	y := make([]float32, n*out)
	panels := make([]float32, PanelsLen(n, in))
	scratch := make([]float32, MulTPanelsScratch)
	for b.Loop() {
		PackPanels(panels, x, n, in)
		MulTPanels(y, out, panels, n, w, in, out, scratch)
	}
	b.ReportMetric(float64(n)*in*out*2*float64(b.N)/b.Elapsed().Seconds()/1e9, "GFLOP/s")
}

func BenchmarkMulTPanelsVsSgemm(b *testing.B) {
	const n, in, out = 32, 288, 32000
	x, w := make([]float32, n*in), make([]float32, out*in)
	for i := range w {
		w[i] = float32(i%7) - 3
	}
	y := make([]float32, n*out)
	b.Run("panels", func(b *testing.B) {
		panels := make([]float32, PanelsLen(n, in))
		scratch := make([]float32, MulTPanelsScratch)
		for b.Loop() {
			PackPanels(panels, x, n, in)
			MulTPanels(y, out, panels, n, w, in, out, scratch)
		}
		b.ReportMetric(float64(n)*in*out*2*float64(b.N)/b.Elapsed().Seconds()/1e9, "GFLOP/s")
	})
	b.Run("DenseMulT", func(b *testing.B) {
		for b.Loop() {
			DenseMulT(y, x, w, n, in, out)
		}
		b.ReportMetric(float64(n)*in*out*2*float64(b.N)/b.Elapsed().Seconds()/1e9, "GFLOP/s")
	})
}

// TestMulTPanelsRowsMatchesMulTPanels checks that writing each row of the
// product into a buffer of its own gives the bits MulTPanels writes into one
// matrix, and touches nothing outside [off, off+out) of each buffer.
func TestMulTPanelsRowsMatchesMulTPanels(t *testing.T) {
	rng := rand.New(rand.NewPCG(9, 9))
	for _, tc := range []struct{ n, in, out, off int }{
		{4, 16, 6, 0}, {33, 48, 200, 3}, {32, 288, 400, 17}, {70, 20, 37, 1},
	} {
		x := genRandomSlice(rng, tc.n*tc.in, 1)
		w := genRandomSlice(rng, tc.out*tc.in, 1)
		panels := make([]float32, PanelsLen(tc.n, tc.in))
		PackPanels(panels, x, tc.n, tc.in)
		y := make([]float32, tc.n*tc.out)
		MulTPanels(y, tc.out, panels, tc.n, w, tc.in, tc.out, make([]float32, MulTPanelsScratch))
		ys := make([][]float32, tc.n)
		for i := range ys {
			ys[i] = make([]float32, tc.off+tc.out+5)
			for o := range ys[i] {
				ys[i][o] = -99
			}
		}
		MulTPanelsRows(ys, tc.off, panels, tc.n, w, tc.in, tc.out, make([]float32, MulTPanelsScratch))
		for i := range tc.n {
			for o, got := range ys[i] {
				want := float32(-99)
				if o >= tc.off && o < tc.off+tc.out {
					want = y[i*tc.out+o-tc.off]
				}
				if got != want {
					t.Fatalf("%+v: row %d [%d] = %g, want %g", tc, i, o, got, want)
				}
			}
		}
	}
}

// TestPackPanelsColsCoverPackPanels checks PackPanels against the
// definition of a panel, and that packing columns in ranges (one of them
// wide and unaligned, for the AVX-512 transposes) gives the same panels,
// zeros included.
func TestPackPanelsColsCoverPackPanels(t *testing.T) {
	const n, in = 37, 45
	x := make([]float32, n*in)
	for i := range x {
		x[i] = float32(i + 1)
	}
	want := make([]float32, PanelsLen(n, in))
	PackPanels(want, x, n, in)
	for p := 0; p*PanelWidth < n; p++ {
		for k := range in {
			for j := range PanelWidth {
				var v float32
				if p*PanelWidth+j < n {
					v = x[(p*PanelWidth+j)*in+k]
				}
				if got := want[p*PanelWidth*in+k*PanelWidth+j]; got != v {
					t.Fatalf("panel %d [%d, %d] = %g, want %g", p, k, j, got, v)
				}
			}
		}
	}
	got := make([]float32, len(want))
	for i := range got {
		got[i] = -1
	}
	for _, r := range [][2]int{{0, 7}, {7, 8}, {8, 45}} {
		PackPanelsCols(got, x, n, in, r[0], r[1])
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("element %d = %g, want %g", i, got[i], want[i])
		}
	}
}
