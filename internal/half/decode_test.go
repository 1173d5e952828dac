package half

import (
	"fmt"
	"math"
	"testing"
	"time"

	"github.com/golora/golora/internal/cpu"
)

// decodeLevels returns every kernel level up to cpu.Best(), so that
// GOLORA_KERNELS=avx2 tests the AVX2 and pure-Go code of an AVX-512 CPU.
func decodeLevels() []cpu.Level {
	var ls []cpu.Level
	for l := cpu.Generic; l <= cpu.Best(); l++ {
		ls = append(ls, l)
	}
	return ls
}

// TestDecodeLevelsExhaustive decodes every 16-bit pattern (NaNs with every
// payload, subnormals, ±0, ±Inf) as F16 and as BF16 at every kernel level,
// over lengths and offsets that leave scalar tails, and compares the bits
// with F16ToFloat32 and BF16ToFloat32.
func TestDecodeLevelsExhaustive(t *testing.T) {
	// Every pattern twice, so that a span can cross a decodeChunk boundary.
	const n = 2 << 16
	src := make([]byte, 2*n)
	for i := range n {
		src[2*i], src[2*i+1] = byte(i), byte(i>>8)
	}
	for _, f16 := range []bool{true, false} {
		want := make([]float32, n)
		for i := range want {
			if f16 {
				want[i] = F16ToFloat32(uint16(i))
			} else {
				want[i] = BF16ToFloat32(uint16(i))
			}
		}
		for _, l := range decodeLevels() {
			for _, span := range [][2]int{{0, n}, {1, n - 3}, {7, 40}, {3, 3}, {100, 131}, {5, 5 + decodeChunk + 47}} {
				lo, hi := span[0], span[1]
				got := make([]float32, hi-lo+1)
				got[len(got)-1] = 42 // must not be written
				decodeAt(l, f16, got[:hi-lo], src[2*lo:])
				for i, g := range got[:hi-lo] {
					if math.Float32bits(g) != math.Float32bits(want[lo+i]) {
						t.Fatalf("%v f16=%v [%d, %d): %#04x: got %#08x, want %#08x", l, f16, lo, hi, lo+i,
							math.Float32bits(g), math.Float32bits(want[lo+i]))
					}
				}
				if got[len(got)-1] != 42 {
					t.Fatalf("%v f16=%v [%d, %d): wrote past the end", l, f16, lo, hi)
				}
			}
		}
	}
}

// BenchmarkDecodeLevels decodes 1 Mi values with the pure-Go code
// ("scalar-GB/s") and cpu.Best()'s ("best-GB/s") alternately in one run;
// GB/s counts input bytes.
func BenchmarkDecodeLevels(b *testing.B) {
	src := make([]byte, 2<<20)
	for i := range src {
		src[i] = byte(i * 7)
	}
	dst := make([]float32, len(src)/2)
	for _, f16 := range []bool{false, true} {
		b.Run(fmt.Sprintf("f16=%v", f16), func(b *testing.B) {
			var scalar, best float64
			for b.Loop() {
				t0 := time.Now()
				decodeAt(cpu.Generic, f16, dst, src)
				t1 := time.Now()
				decodeAt(cpu.Best(), f16, dst, src)
				scalar += float64(t1.Sub(t0))
				best += float64(time.Since(t1))
			}
			gb := float64(len(src)) * float64(b.N)
			b.ReportMetric(gb/scalar, "scalar-GB/s")
			b.ReportMetric(gb/best, "best-GB/s")
			b.ReportMetric(scalar/best, "speedup")
			b.ReportMetric(0, "ns/op")
		})
	}
}

// TestDecodeBF16FiniteLevels: at every kernel level, decodeBF16FiniteAt
// gives decodeAt's values, and reports a non-finite value exactly when one
// of the spans holds an exponent of all ones (checked here with
// BF16ToFloat32 and math), wherever it sits: in a vector step, in a
// scalar tail, or beyond the first decodeChunk.
func TestDecodeBF16FiniteLevels(t *testing.T) {
	const n = 2*decodeChunk + 77
	src := make([]byte, 2*n)
	for i := range n {
		v := uint16(i*2654435761>>7) &^ 0x4000 // exponent never all ones
		src[2*i], src[2*i+1] = byte(v), byte(v>>8)
	}
	for _, l := range decodeLevels() {
		for _, pos := range []int{-1, 0, 31, 32, 63, decodeChunk + 5, n - 1} {
			for _, bad := range []uint16{0x7f80, 0xff80, 0x7fc1, 0xffff} {
				s := append([]byte(nil), src...)
				if pos >= 0 {
					s[2*pos], s[2*pos+1] = byte(bad), byte(bad>>8)
				}
				for _, span := range [][2]int{{0, n}, {1, n - 3}, {3, 3}, {29, 70}} {
					lo, hi := span[0], span[1]
					wantFinite := true
					for i := lo; i < hi; i++ {
						v := float64(BF16ToFloat32(uint16(s[2*i]) | uint16(s[2*i+1])<<8))
						if math.IsNaN(v) || math.IsInf(v, 0) {
							wantFinite = false
						}
					}
					got := make([]float32, hi-lo)
					want := make([]float32, hi-lo)
					finite := decodeBF16FiniteAt(l, got, s[2*lo:])
					decodeAt(l, false, want, s[2*lo:])
					if finite != wantFinite {
						t.Fatalf("%v: bad %#04x at %d, span [%d, %d): finite %v, want %v", l, bad, pos, lo, hi, finite, wantFinite)
					}
					for i := range got {
						if math.Float32bits(got[i]) != math.Float32bits(want[i]) {
							t.Fatalf("%v: span [%d, %d): element %d: %#08x, want %#08x", l, lo, hi, lo+i, math.Float32bits(got[i]), math.Float32bits(want[i]))
						}
					}
				}
			}
		}
	}
}
