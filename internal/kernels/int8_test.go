package kernels

import (
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"testing"

	"github.com/golora/golora/internal/cpu"
)

// TestInt8MulVecRowsMatchesGeneric: every kernel level this CPU supports
// (capped by GOLORA_KERNELS) gives the bits of the generic code, for odd and
// even block counts, chunk boundaries and sub-ranges of rows.
func TestInt8MulVecRowsMatchesGeneric(t *testing.T) {
	if env := os.Getenv(cpu.EnvVar); env != "" {
		if _, err := cpu.ParseLevel(env); err != nil {
			t.Fatal(err)
		}
	}
	rng := rand.New(rand.NewPCG(8, 1))
	for _, shape := range [][2]int{{1, 32}, {3, 64}, {7, 96}, {300, 288}, {600, 768}} {
		rows, cols := shape[0], shape[1]
		w := genRandomSlice(rng, rows*cols, 1)
		m, err := QuantizeInt8(w, rows, cols)
		if err != nil {
			t.Fatal(err)
		}
		x := genRandomSlice(rng, cols, 1)
		want := make([]float32, rows)
		m.mulVecRowsAt(cpu.Generic, want, x, 0, rows)
		for l := cpu.AVX2; l <= cpu.Best(); l++ {
			for _, r := range [][2]int{{0, rows}, {rows / 3, rows}, {0, (rows + 1) / 2}} {
				got := make([]float32, rows)
				m.mulVecRowsAt(l, got, x, r[0], r[1])
				for i := r[0]; i < r[1]; i++ {
					if math.Float32bits(got[i]) != math.Float32bits(want[i]) {
						t.Fatalf("%v, [%d %d], rows [%d %d): y[%d] = %v, generic %v", l, rows, cols, r[0], r[1], i, got[i], want[i])
					}
				}
			}
		}
	}
}

// TestInt8Accuracy: the int8 product is within the rounding the format
// allows of the float32 product: each code is off by at most half a step
// (scale/2), so |error| ≤ Σ_blocks scale/2·Σ|x| over the block.
func TestInt8Accuracy(t *testing.T) {
	rng := rand.New(rand.NewPCG(8, 2))
	rows, cols := 50, 288
	w := genRandomSlice(rng, rows*cols, 1)
	w[5] = 0
	copy(w[cols:cols+32], make([]float32, 32)) // an all-zero block
	m, err := QuantizeInt8(w, rows, cols)
	if err != nil {
		t.Fatal(err)
	}
	x := genRandomSlice(rng, cols, 1)
	y := make([]float32, rows)
	m.MulVecRows(y, x, 0, rows)
	for r := range rows {
		var exact, bound float64
		for c := range cols {
			exact += float64(w[r*cols+c]) * float64(x[c])
			bound += float64(m.Scales[(r*cols+c)/Int8Block]) / 2 * math.Abs(float64(x[c]))
		}
		if d := math.Abs(float64(y[r]) - exact); d > bound*1.001+1e-5 {
			t.Errorf("row %d: %v, float64 %v: error %g above the bound %g", r, y[r], exact, d, bound)
		}
	}
}

func TestQuantizeInt8Errors(t *testing.T) {
	if _, err := QuantizeInt8(make([]float32, 40), 1, 40); err == nil {
		t.Error("40 columns (not a multiple of 32): no error")
	}
	if _, err := QuantizeInt8(make([]float32, 31), 1, 32); err == nil {
		t.Error("31 values for [1 32]: no error")
	}
	w := make([]float32, 64)
	w[37] = float32(math.Inf(1))
	if _, err := QuantizeInt8(w, 2, 32); err == nil {
		t.Error("+Inf: no error")
	}
}

// BenchmarkInt8MulVec compares the int8 product with a stories15M-shaped
// output head (32000 × 288, read from memory) and with a 2048-row slice of
// it (cache-resident: compute-bound) against the float32 one (DenseMulT).
func BenchmarkInt8MulVec(b *testing.B) {
	for _, rows := range []int{32000, 2048} {
		b.Run(fmt.Sprintf("rows=%d", rows), func(b *testing.B) { benchInt8MulVec(b, rows, 288) })
	}
}

func benchInt8MulVec(b *testing.B, rows, cols int) {
	rng := rand.New(rand.NewPCG(8, 3))
	w := genRandomSlice(rng, rows*cols, 1)
	x := genRandomSlice(rng, cols, 1)
	y := make([]float32, rows)
	m, err := QuantizeInt8(w, rows, cols)
	if err != nil {
		b.Fatal(err)
	}
	b.Run("int8", func(b *testing.B) {
		for b.Loop() {
			m.MulVecRows(y, x, 0, rows)
		}
		b.ReportMetric(float64(len(m.Codes)+4*len(m.Scales))*float64(b.N)/b.Elapsed().Seconds()/1e9, "GB/s")
	})
	b.Run("float32", func(b *testing.B) {
		for b.Loop() {
			DenseMulT(y, x, w, 1, cols, rows)
		}
		b.ReportMetric(float64(4*len(w))*float64(b.N)/b.Elapsed().Seconds()/1e9, "GB/s")
	})
}
