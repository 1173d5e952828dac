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

// ropeRef is Rope written element by element from the row's index, not by
// walking heads and halves as Rope does: element j of a head pairs with
// j + half or j − half, and elements from 2·half on pass unrotated.
func ropeRef(dst, x, cos, sin []float32, headDim int, inverse bool) {
	half := min(len(cos), headDim/2)
	sign := float32(1)
	if inverse {
		sign = -1
	}
	out := make([]float32, len(x)/headDim*headDim)
	for j := range out {
		switch i := j % headDim; {
		case i >= 2*half:
			out[j] = x[j]
		case i < half:
			out[j] = x[j]*cos[i] - x[j+half]*(sign*sin[i])
		default:
			k := i - half
			out[j] = x[j-half]*(sign*sin[k]) + x[j]*cos[k]
		}
	}
	copy(dst, out)
}
