package kernels

import (
	"fmt"
	"math"
	"testing"
)

func TestExpShiftedAccuracy(t *testing.T) {
	const n = 1_000_001
	x := make([]float32, n)
	for i := range x {
		x[i] = float32(-87 * float64(i) / (n - 1))
	}
	// A shift m ≠ 0: e^(x − m) with m = 0.5 and x ≤ 0.5.
	const m = 0.5
	for i := range x {
		x[i] += m
	}
	got := make([]float32, n)
	sum := expShifted(got, x, m)
	var worst, want float64
	for i, v := range x {
		e := math.Exp(float64(v - m))
		want += e
		r := math.Abs(float64(got[i])-e) / e
		worst = math.Max(worst, r)
		if r > 2.5e-7 {
			t.Fatalf("e^(%v − %v) = %v, want %v (relative error %.2g)", v, m, got[i], e, r)
		}
	}
	t.Logf("worst relative error %.2g (float32 ulp is at most 1.2e-7 relative)", worst)
	if math.Abs(sum-want) > 1e-6*want {
		t.Errorf("sum %v, want %v", sum, want)
	}
	edge := []float32{0, -100, -87.5}
	expShifted(edge, edge, 0)
	if edge[0] != 1 || edge[1] > 2e-38 || edge[2] > 2e-38 {
		t.Errorf("e^0, e^-100, e^-87.5 = %v, want 1 and two values below 2e-38", edge)
	}
}

// BenchmarkSoftmax compares softmax with its scalar steps on an attention
// row (20: two groups of 8 and a tail), a short vocabulary (512,
// stories260K's) and a long one (32000).
func BenchmarkSoftmax(b *testing.B) {
	for _, n := range []int{20, 512, 32000} {
		x := make([]float32, n)
		for i := range x {
			x[i] = float32(10 * math.Sin(float64(i)))
		}
		row := make([]float32, n)
		b.Run(fmt.Sprintf("n=%d/scalar", n), func(b *testing.B) {
			for b.Loop() {
				copy(row, x)
				sum := expShiftedScalar(row, row, rowMaxScalar(row))
				scaleFloatsScalar(row, float32(1/sum))
			}
			b.ReportMetric(float64(n*b.N)/b.Elapsed().Seconds()/1e9, "Gelem/s")
		})
		b.Run(fmt.Sprintf("n=%d/kernel", n), func(b *testing.B) {
			for b.Loop() {
				copy(row, x)
				softmax(row)
			}
			b.ReportMetric(float64(n*b.N)/b.Elapsed().Seconds()/1e9, "Gelem/s")
		})
	}
}
