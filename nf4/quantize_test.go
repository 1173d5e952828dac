package nf4

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/golora/golora/internal/cpu"
	"github.com/stretchr/testify/require"
)

// adversarialWeights returns weights built to hit every edge of the code
// search at the given block size: blocks whose absmax is 1 holding every
// midpoint exactly and its float32 neighbours (ties go to the lower code),
// every codebook value, ±0, blocks of subnormals (a subnormal absmax),
// all-equal blocks of either sign, all-zero and all-negative-zero blocks, a
// negative absmax, and gaussian blocks of very different scales.
func adversarialWeights(seed uint64, blockSize int) []float32 {
	r := rand.New(rand.NewPCG(seed, 7))
	var edge []float32
	for _, m := range Midpoints() {
		edge = append(edge, m, math.Nextafter32(m, -2), math.Nextafter32(m, 2), -m)
	}
	for _, c := range Codebook() {
		edge = append(edge, c, -c)
	}
	edge = append(edge, 0, float32(math.Copysign(0, -1)), math.SmallestNonzeroFloat32, -math.SmallestNonzeroFloat32)
	var w []float32
	block := func(fill func(i int) float32) {
		for i := range blockSize {
			w = append(w, fill(i))
		}
	}
	// Edges scaled by absmax 1 (the block's first element is ±1), then by
	// powers of two, which keep the quotients exact, and by 0.37, which
	// does not.
	for _, scale := range []float32{1, 0.5, 1 << 20, 0x1p-100, 0.37} {
		for start := 0; start < len(edge); start += blockSize - 1 {
			block(func(i int) float32 {
				if i == 0 {
					return scale * float32(1-2*(start/blockSize%2))
				}
				j := start + i - 1
				if j >= len(edge) {
					return edge[r.IntN(len(edge))] * scale
				}
				return edge[j] * scale
			})
		}
	}
	negZero := float32(math.Copysign(0, -1))
	block(func(int) float32 { return 0 })
	block(func(int) float32 { return negZero })
	block(func(i int) float32 { return []float32{0, negZero}[i%2] })
	block(func(int) float32 { return 0.25 })
	block(func(int) float32 { return -3 })
	block(func(i int) float32 { return math.Float32frombits(uint32(r.IntN(1 << 23))) }) // subnormals
	block(func(i int) float32 { return -math.Float32frombits(uint32(1 + i)) })
	block(func(i int) float32 { // absmax from a negative weight
		if i == blockSize/3 {
			return -2
		}
		return float32(r.NormFloat64())
	})
	block(func(i int) float32 { return math.MaxFloat32 * float32(1-2*(i%2)) })
	for _, std := range []float64{1e-30, 1e-3, 1, 1e30} {
		block(func(int) float32 { return float32(r.NormFloat64() * std) })
	}
	// Random bit patterns of finite floats.
	for range 4 {
		block(func(int) float32 {
			for {
				f := math.Float32frombits(r.Uint32())
				if !math.IsNaN(float64(f)) && !math.IsInf(float64(f), 0) {
					return f
				}
			}
		})
	}
	return w
}

// quantizeAt runs quantizeBlocksRangeAt at level l on w and returns the
// packed codes, the absmax values and the index of the first non-finite
// weight. Output bytes not written stay 0xAB.
func quantizeAt(l cpu.Level, w []float32, blockSize int) ([]byte, []float32, int) {
	packed := make([]byte, (len(w)+1)/2)
	for i := range packed {
		packed[i] = 0xab
	}
	absmax := make([]float32, (len(w)+blockSize-1)/blockSize)
	bad := quantizeBlocksRangeAt(l, packed, absmax, w, blockSize)
	return packed, absmax, bad
}

// TestQuantizeLevelsBitIdentical checks every kernel level against the
// scalar code on random and adversarial weights, at every block size, with
// whole and partial last blocks and odd lengths. Run with
// GOLORA_KERNELS=avx2 to cover AVX2 on an AVX-512 machine.
func TestQuantizeLevelsBitIdentical(t *testing.T) {
	for _, blockSize := range []int{32, 64, 128, 256, 512, 1024, 2048, 4096} {
		base := adversarialWeights(uint64(blockSize), blockSize)
		base = append(base, gaussian(uint64(blockSize), 3*quantizeChunk+5*blockSize, 0.02)...)
		for _, n := range []int{len(base), len(base) - 1, len(base) - blockSize/2 - 1, blockSize - 1, 1} {
			w := base[:n]
			wantPacked, wantAbsmax, wantBad := quantizeAt(cpu.Generic, w, blockSize)
			require.Equal(t, -1, wantBad)
			for _, l := range levels()[1:] {
				name := fmt.Sprintf("%v/block=%d/n=%d", l, blockSize, n)
				packed, absmax, bad := quantizeAt(l, w, blockSize)
				require.Equal(t, -1, bad, name)
				requireSameBits(t, wantAbsmax, absmax, name)
				for i := range wantPacked {
					if packed[i] != wantPacked[i] {
						require.Failf(t, "different codes", "%s: byte %d (elements %d, %d = %v, %v): want %#02x, got %#02x",
							name, i, 2*i, 2*i+1, w[2*i], w[min(2*i+1, n-1)], wantPacked[i], packed[i])
					}
				}
			}
		}
	}
}

// TestQuantizeScalarCodes checks the scalar code itself on the adversarial
// weights against referenceCode (the plain count of midpoints below the
// quotient), so that the kernels above are compared with a checked rule.
func TestQuantizeScalarCodes(t *testing.T) {
	const blockSize = 64
	w := adversarialWeights(1, blockSize)
	packed, absmax, bad := quantizeAt(cpu.Generic, w, blockSize)
	require.Equal(t, -1, bad)
	for i, x := range w {
		a := absmax[i/blockSize]
		want := byte(zeroCode)
		if a != 0 {
			want = referenceCode(x / a)
		}
		got := packed[i/2] >> 4
		if i%2 == 1 {
			got = packed[i/2] & 15
		}
		require.Equalf(t, want, got, "element %d = %v, absmax %v", i, x, a)
	}
}

// TestQuantizeLevelsNonFinite checks that every level reports the same first
// NaN or ±Inf, in a whole block or in the partial last block.
func TestQuantizeLevelsNonFinite(t *testing.T) {
	const blockSize = 64
	w := gaussian(3, 40*blockSize+17, 1)
	for _, pos := range []int{0, 5, blockSize, 17*blockSize + 63, 39*blockSize - 1, 40*blockSize + 3} {
		for _, bad := range []float32{float32(math.NaN()), float32(math.Inf(1)), float32(math.Inf(-1)),
			math.Float32frombits(0xff800001)} {
			v := append([]float32(nil), w...)
			v[pos] = bad
			if pos+7 < len(v) {
				v[pos+7] = float32(math.NaN()) // a later one must not be reported
			}
			for _, l := range levels() {
				_, _, got := quantizeAt(l, v, blockSize)
				require.Equalf(t, pos, got, "%v: %v at %d", l, bad, pos)
			}
		}
	}
}
