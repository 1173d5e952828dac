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
	testDotRowsMatchGo(t, goldenTypes, [][2]int{{1, 1}, {3, 1}, {5, 7}, {16, 9}, {4, 64}},
		func(typ Type, f *format, y []float32, w []byte, x []float32) { dotRowsAt(cpu.AVX2, typ, f, y, w, x) })
}

// TestDotRowsAVX512MatchesGo is TestDotRowsAVX2MatchesGo for the AVX-512
// kernels, which take rows two by two (an odd last one at AVX2), run as
// products run them (MulTRows): odd and even row counts, so that each half
// of a register meets the Go code.
func TestDotRowsAVX512MatchesGo(t *testing.T) {
	if cpu.Best() < cpu.AVX512 || !cpu.HasF16C() {
		t.Skip("no AVX-512 with F16C here, or GOLORA_KERNELS caps it")
	}
	var shapes [][2]int
	for _, rows := range []int{1, 2, 3, 7, 64} {
		for _, blocks := range []int{1, 2, 5, 64} {
			shapes = append(shapes, [2]int{rows, blocks})
		}
	}
	testDotRowsMatchGo(t, []Type{Q8_0, Q4_0}, shapes, func(typ Type, f *format, y []float32, w []byte, x []float32) {
		m, err := New("pairs", typ, len(y), len(x), w)
		if err != nil {
			t.Fatal(err)
		}
		if err := m.MulTRows(y, x, 1, 0, len(y)); err != nil {
			t.Fatal(err)
		}
	})
}

// testDotRowsMatchGo compares kernel, which sets y to the rows of w times
// x, with the Go code, bit for bit, for each type and {rows, blocks} shape.
func testDotRowsMatchGo(t *testing.T, types []Type, shapes [][2]int, kernel func(typ Type, f *format, y []float32, w []byte, x []float32)) {
	rng := rand.New(rand.NewPCG(22, 0))
	for _, typ := range types {
		f := formats[typ]
		for _, shape := range shapes {
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
			kernel(typ, f, got, w, x)
			dotRowsAt(cpu.Generic, typ, f, want, w, x)
			for r := range want {
				if g, v := got[r], want[r]; math.Float32bits(g) != math.Float32bits(v) && !(g != g && v != v) {
					t.Fatalf("%v, %d rows of %d blocks: row %d: kernel %g, Go %g", typ, rows, blocks, r, g, v)
				}
			}
		}
	}
}

// TestPairedRowsMatchRowKernel: MulTRows with the two-row AVX-512 kernels
// (row r with row r+half, a chunk of pairs a call) gives each row the bits
// of the Go row kernel, for ranges with odd and even row counts across
// several chunks.
func TestPairedRowsMatchRowKernel(t *testing.T) {
	if !paired(Q8_0) {
		t.Skip("no two-row kernels at this level")
	}
	const rows, cols = 203, 1024 // fusedRowsChunk/cols/2 = 8 pairs a call
	for _, typ := range []Type{Q8_0, Q4_0} {
		m, err := Quantize(typ, randomX(rows, cols, 5), rows, cols)
		if err != nil {
			t.Fatal(err)
		}
		rowDot := map[Type]func([]byte, []float32) float32{Q8_0: dotQ8_0, Q4_0: dotQ4_0}[typ]
		for _, n := range []int{1, 2} {
			x := randomX(n, cols, 6)
			for _, cut := range [][2]int{{0, rows}, {3, 200}, {7, 8}, {10, 13}, {0, 1}} {
				y := make([]float32, n*rows)
				if err := m.MulTRows(y, x, n, cut[0], cut[1]); err != nil {
					t.Fatal(err)
				}
				for i := range n {
					for r := cut[0]; r < cut[1]; r++ {
						want := rowDot(m.data[r*m.rowBytes:(r+1)*m.rowBytes], x[i*cols:(i+1)*cols])
						if got := y[i*rows+r]; math.Float32bits(got) != math.Float32bits(want) {
							t.Fatalf("%v n %d rows %v: y[%d, %d] = %v, row kernel %v", typ, n, cut, i, r, got, want)
						}
					}
				}
			}
		}
	}
}
