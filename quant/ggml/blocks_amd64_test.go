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

// TestDotRowsAVX2MatchesGo runs the fused row kernels on random rows whose
// fp16 scales take every finite sign and exponent, subnormals among them,
// at the AVX2 level and in Go: the same bits.
func TestDotRowsAVX2MatchesGo(t *testing.T) {
	if cpu.Best() < cpu.AVX2 || !cpu.HasF16C() {
		t.Skip("no AVX2 with F16C here, or GOLORA_KERNELS caps it")
	}
	rng := rand.New(rand.NewPCG(22, 0))
	for _, typ := range goldenTypes {
		f := formats[typ]
		for _, shape := range [][2]int{{1, 1}, {3, 1}, {5, 7}, {16, 9}, {4, 64}} {
			rows, blocks := shape[0], shape[1]
			w := make([]byte, rows*blocks*f.blockBytes)
			for i := range w {
				w[i] = byte(rng.Uint32())
			}
			for b := 0; b < rows*blocks; b++ {
				for _, off := range f.scales {
					h := uint16(rng.IntN(0x7c00)) | uint16(rng.IntN(2))<<15 // finite
					w[b*f.blockBytes+off], w[b*f.blockBytes+off+1] = byte(h), byte(h>>8)
				}
			}
			// x within a few binades of a random scale, so that every
			// term's rounding reaches the sum.
			x := make([]float32, blocks*f.blockElems)
			e := rng.IntN(40) - 20
			for i := range x {
				x[i] = float32(rng.NormFloat64() * math.Ldexp(1, e+rng.IntN(4)))
			}
			got, want := make([]float32, rows), make([]float32, rows)
			dotRowsAt(cpu.AVX2, typ, f, got, w, x)
			dotRowsAt(cpu.Generic, typ, f, want, w, x)
			for r := range want {
				if g, v := got[r], want[r]; math.Float32bits(g) != math.Float32bits(v) && !(g != g && v != v) {
					t.Fatalf("%v, %d rows of %d blocks: row %d: kernel %g, Go %g", typ, rows, blocks, r, g, v)
				}
			}
		}
	}
}
