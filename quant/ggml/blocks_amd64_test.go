package ggml

import (
	"math"
	"math/rand/v2"
	"testing"

	"github.com/golora/golora/internal/cpu"
)

// TestDequantQ8_0AVX512MatchesGo decodes random Q8_0 rows whose fp16
// scales take every sign and exponent, subnormals, the largest, Inf and NaN
// among them, with the AVX-512 kernel and with the Go code: the same bits,
// NaN for NaN.
func TestDequantQ8_0AVX512MatchesGo(t *testing.T) {
	if cpu.Best() < cpu.AVX512 || !cpu.HasF16C() {
		t.Skip("no AVX-512 with F16C here, or GOLORA_KERNELS caps it")
	}
	rng := rand.New(rand.NewPCG(8, 0))
	const blocks = 1 << 16 / 32 * 3 // each of the 2048 top-11-bit patterns of a scale, 3 times
	row := make([]byte, blocks*34)
	for b := range blocks {
		h := uint16(b%2048)<<5 | uint16(rng.IntN(32))
		row[b*34], row[b*34+1] = byte(h), byte(h>>8)
		for j := range 32 {
			row[b*34+2+j] = byte(rng.Uint32())
		}
	}
	for _, n := range []int{blocks, 1, 7} {
		got, want := make([]float32, 32*n), make([]float32, 32*n)
		dequantQ8_0At(cpu.AVX512, got, row[:34*n])
		dequantQ8_0Go(want, row[:34*n])
		for i := range want {
			g, w := got[i], want[i]
			if math.Float32bits(g) != math.Float32bits(w) && !(g != g && w != w) {
				t.Fatalf("%d blocks: value %d (block %d, scale %#04x): kernel %g, Go %g", n, i, i/32, uint16(row[i/32*34])|uint16(row[i/32*34+1])<<8, g, w)
			}
		}
	}
}
