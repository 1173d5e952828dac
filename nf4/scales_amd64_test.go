package nf4

import (
	"math"
	"testing"

	"github.com/golora/golora/internal/cpu"
)

// TestScalesAVX512AllCodes checks the AVX-512 scale decoders (with VBMI
// and without) against the Go
// expression on every 8-bit code (quantized absmax values use only some of
// them), with a table whose entries all differ.
func TestScalesAVX512AllCodes(t *testing.T) {
	if cpu.Best() < cpu.AVX512 {
		t.Skip("no AVX-512 at this level")
	}
	var table [256]float32
	for i := range table {
		table[i] = float32(i-128)/131 + 1e-3*float32(i%7)
	}
	codes := make([]uint8, 512)
	for i := range codes {
		codes[i] = uint8(i*37 + i/256)
	}
	nested, offset := float32(0.0371), float32(0.0123)
	check := func(name string, out []float32) {
		t.Helper()
		for k, c := range codes {
			want := float32(table[c]*nested) + offset
			if math.Float32bits(out[k]) != math.Float32bits(want) {
				t.Fatalf("%s: code %d (index %d): got %v, want %v", name, c, k, out[k], want)
			}
		}
	}
	out := make([]float32, len(codes))
	scalesAVX512(&out[0], &codes[0], len(codes), &table, nested, offset)
	check("scalesAVX512", out)
	if cpu.HasAVX512VBMI() {
		dq := newDoubleQuant(nil, nil, table[:], 0, NestedBlockSize)
		out := make([]float32, len(codes))
		scalesVBMI(&out[0], &codes[0], len(codes), &dq.planes, nested, offset)
		check("scalesVBMI", out)
	}
}
