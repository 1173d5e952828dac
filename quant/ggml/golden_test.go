package ggml

import (
	"encoding/binary"
	"math"
	"os"
	"path/filepath"
	"testing"
)

// The golden files in testdata were written by ggml itself (testdata/README.md):
// input.f32 holds the [goldenRows, goldenCols] test weights, T.blocks ggml's
// quantization of them to type T and T.f32 ggml's dequantization of T.blocks.
const goldenRows, goldenCols = 6, 512

var goldenTypes = []Type{Q8_0, Q4_0, Q4_1, Q5_0, Q5_1, Q2_K, Q3_K, Q4_K, Q5_K, Q6_K}

// quantizedTypes are the types we write.
var quantizedTypes = []Type{Q8_0, Q4_0, Q4_1, Q5_0, Q5_1, Q4_K, Q5_K, Q6_K}

func readFloats(t testing.TB, name string) []float32 {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	out := make([]float32, len(raw)/4)
	if _, err := binary.Decode(raw, binary.LittleEndian, out); err != nil {
		t.Fatal(err)
	}
	return out
}

func goldenBlocks(t testing.TB, typ Type) []byte {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join("testdata", typ.String()+".blocks"))
	if err != nil {
		t.Fatal(err)
	}
	return raw
}

// TestDequantizeMatchesGGML checks every format's dequantization against
// ggml's, bit for bit, on blocks ggml quantized.
func TestDequantizeMatchesGGML(t *testing.T) {
	for _, typ := range goldenTypes {
		t.Run(typ.String(), func(t *testing.T) {
			want := readFloats(t, typ.String()+".f32")
			m, err := New("golden", typ, goldenRows, goldenCols, goldenBlocks(t, typ))
			if err != nil {
				t.Fatal(err)
			}
			got := make([]float32, goldenRows*goldenCols)
			if err := m.DequantizeRows(got, 0, goldenRows); err != nil {
				t.Fatal(err)
			}
			for i := range want {
				if math.Float32bits(got[i]) != math.Float32bits(want[i]) {
					t.Fatalf("element %d (row %d, col %d): got %g (%#08x), ggml %g (%#08x)",
						i, i/goldenCols, i%goldenCols, got[i], math.Float32bits(got[i]), want[i], math.Float32bits(want[i]))
				}
			}
			// A middle range of rows lands at the start of dst.
			part := make([]float32, 2*goldenCols)
			if err := m.DequantizeRows(part, 3, 5); err != nil {
				t.Fatal(err)
			}
			for i := range part {
				if math.Float32bits(part[i]) != math.Float32bits(want[3*goldenCols+i]) {
					t.Fatalf("rows [3, 5): element %d differs", i)
				}
			}
		})
	}
}

// TestQuantizeMatchesGGML checks that the quantizers write the bytes ggml's
// reference quantizer wrote for the same weights.
func TestQuantizeMatchesGGML(t *testing.T) {
	w := readFloats(t, "input.f32")
	for _, typ := range quantizedTypes {
		t.Run(typ.String(), func(t *testing.T) {
			want := goldenBlocks(t, typ)
			m, err := Quantize(typ, w, goldenRows, goldenCols)
			if err != nil {
				t.Fatal(err)
			}
			got := m.Blocks()
			_, blockBytes, _ := typ.BlockSize()
			for i := range want {
				if got[i] != want[i] {
					b := i / blockBytes
					t.Fatalf("byte %d (block %d, byte %d of it): got %#02x, ggml %#02x\nours %x\nggml %x",
						i, b, i%blockBytes, got[i], want[i], got[b*blockBytes:(b+1)*blockBytes], want[b*blockBytes:(b+1)*blockBytes])
				}
			}
		})
	}
}
