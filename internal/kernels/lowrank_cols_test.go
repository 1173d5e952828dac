package kernels

import (
	"testing"

	"math/rand/v2"

	"github.com/golora/golora/internal/half"
)

// TestLowRankExpandCols checks that column ranges of the expand, float32 and
// binary16, add what LowRankExpand adds to those columns: bit for bit for
// ranges starting at a multiple of 16 and ending at one or at the row's
// end (how a Batch's product parts cut their columns), within float32
// rounding for others.
func TestLowRankExpandCols(t *testing.T) {
	rng := rand.New(rand.NewPCG(11, 11))
	for _, r := range []int{1, 3, 8} {
		for _, out := range []int{40, 288, 768} {
			bt := genRandomSlice(rng, r*out, 1)
			bt16 := make([]uint16, len(bt))
			for i, v := range bt {
				bt16[i] = half.Float32ToF16(v)
			}
			s := genRandomSlice(rng, r, 1)
			y0 := genRandomSlice(rng, out, 1)
			full := append([]float32(nil), y0...)
			LowRankExpand(full, s, bt, r, out)
			full16 := append([]float32(nil), y0...)
			LowRankExpandF16(full16, s, bt16, r, out)
			for _, rg := range [][2]int{{0, out}, {16, out}, {0, 32}, {16, 32}, {3, out - 5}, {out - 1, out}, {7, 8}} {
				lo, hi := rg[0], rg[1]
				exact := lo%16 == 0 && (hi%16 == 0 || hi == out)
				y := append([]float32(nil), y0[lo:hi]...)
				LowRankExpandCols(y, s, bt, r, out, lo, hi)
				y16 := append([]float32(nil), y0[lo:hi]...)
				LowRankExpandColsF16(y16, s, bt16, r, out, lo, hi)
				for i := range y {
					for _, c := range []struct {
						name      string
						got, want float32
					}{{"f32", y[i], full[lo+i]}, {"f16", y16[i], full16[lo+i]}} {
						if exact && c.got != c.want || !exact && !closeTo(c.got, c.want) {
							t.Fatalf("%s r=%d out=%d [%d, %d): column %d = %g, LowRankExpand %g", c.name, r, out, lo, hi, lo+i, c.got, c.want)
						}
					}
				}
			}
		}
	}
}

func closeTo(a, b float32) bool {
	d := a - b
	if d < 0 {
		d = -d
	}
	m := max(a, -a, b, -b)
	return d <= 1e-5*m+1e-6
}
