package kernels

import "testing"

// BenchmarkRope rotates a stories15M row (6 heads of 48) in place; a
// 32-row batch step runs 384 of these.
func BenchmarkRope(b *testing.B) {
	x := make([]float32, 288)
	cos, sin := make([]float32, 24), make([]float32, 24)
	for i := range x {
		x[i] = float32(i) * 0.01
	}
	for i := range cos {
		cos[i], sin[i] = 0.6, 0.8
	}
	for b.Loop() {
		Rope(x, x, cos, sin, 48, false)
	}
}

// TestRopeMatchesPairs: Rope gives the bits of the plain formula, pair by
// pair, turning either way, with full and partial rotary, into another
// slice and in place.
func TestRopeMatchesPairs(t *testing.T) {
	for _, inv := range []bool{false, true} {
		for _, half := range []int{24, 16} {
			x := make([]float32, 288)
			cos, sin := make([]float32, half), make([]float32, half)
			for i := range x {
				x[i] = float32(i)*0.0137 - 1
			}
			for i := range cos {
				cos[i], sin[i] = float32(i)*0.03+0.1, 0.9-float32(i)*0.02
			}
			want := make([]float32, 288)
			ropeRef(want, x, cos, sin, 48, inv)
			got := make([]float32, 288)
			Rope(got, x, cos, sin, 48, inv)
			for i := range got {
				if got[i] != want[i] {
					t.Fatalf("inv %v half %d: %d: %v != %v", inv, half, i, got[i], want[i])
				}
			}
			Rope(x, x, cos, sin, 48, inv)
			for i := range got {
				if x[i] != want[i] {
					t.Fatalf("in place inv %v half %d: %d: %v != %v", inv, half, i, x[i], want[i])
				}
			}
		}
	}
}

// ropeRef is Rope written pair by pair.
func ropeRef(dst, x, cos, sin []float32, headDim int, inverse bool) {
	half := min(len(cos), headDim/2)
	cos, sin = cos[:half], sin[:half]
	for off := 0; off+headDim <= len(x); off += headDim {
		xa, xb := x[off:off+half], x[off+half:off+2*half]
		ya, yb := dst[off:off+half], dst[off+half:off+2*half]
		if 2*half < headDim {
			copy(dst[off+2*half:off+headDim], x[off+2*half:off+headDim])
		}
		for i, c := range cos {
			a, b, s := xa[i], xb[i], sin[i]
			if inverse {
				s = -s
			}
			ya[i] = a*c - b*s
			yb[i] = a*s + b*c
		}
	}
}
