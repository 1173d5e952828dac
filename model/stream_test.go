package model

import (
	"bytes"
	"context"
	"errors"
	"math"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/golora/golora/internal/kernels"
	"github.com/golora/golora/internal/safetensors"
	"github.com/golora/golora/nf4"
	"github.com/golora/golora/quant"
	"github.com/golora/golora/quant/ggml"
	"github.com/stretchr/testify/require"
)

// TestLoadQuantizerMatchesQuantizeAfter: quantizing each linear as it
// streams gives the same matrices as loading in float32 and quantizing
// afterwards (the quantizer sees the same values), for one safetensors
// file, sharded files and F32/BF16 storage.
func TestLoadQuantizerMatchesQuantizeAfter(t *testing.T) {
	q := nf4.Quantizer(nf4.Options{})
	for _, tc := range []struct {
		name    string
		dtype   safetensors.DType
		sharded bool
		tied    bool
		// prefault reads every tensor kept in float32 last, into memory
		// allocated and populated ahead (prefaultDense), as a real
		// model's embedding and output head are.
		prefault bool
	}{
		{"f32", safetensors.F32, false, false, false},
		{"bf16 sharded tied", safetensors.BF16, true, true, false},
		{"f32 prefaulted", safetensors.F32, false, false, true},
		{"bf16 sharded tied prefaulted", safetensors.BF16, true, true, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := hfTestConfig()
			cfg.TiedOutput = tc.tied
			dir := t.TempDir()
			if err := WriteHF(dir, hfRandomWeights(cfg, 5, nil), tc.dtype); err != nil {
				t.Fatal(err)
			}
			if tc.sharded {
				hfShard(t, dir)
			}
			want, err := loadHF(dir)
			if err != nil {
				t.Fatal(err)
			}
			if err := want.Quantize(context.Background(), q); err != nil {
				t.Fatal(err)
			}
			so := streamOptions{quantizer: q}
			if tc.prefault {
				so.prefaultMin = 1
			}
			got, err := loadHFStream(context.Background(), dir, so)
			if err != nil {
				t.Fatal(err)
			}
			if err := got.Validate(); err != nil {
				t.Fatal(err)
			}
			hfAssertSameNF4(t, got, want)
			// A BF16 checkpoint keeps its embedding and head in BF16
			// (quant.Half); nothing else may quantize them.
			_, half := got.Output.Quantized.(*quant.Half)
			if wantHalf := tc.dtype == safetensors.BF16; half != wantHalf || (got.EmbeddingMatrix != nil) != wantHalf {
				t.Errorf("output head %T, embedding matrix %T; want BF16 matrices %v", got.Output.Quantized, got.EmbeddingMatrix, wantHalf)
			}
		})
	}
}

// TestLoadQuantizerErrors: a quantizer failure names the file and the
// linear, and a cancelled context stops the load.
func TestLoadQuantizerErrors(t *testing.T) {
	dir := t.TempDir()
	if err := WriteHF(dir, hfRandomWeights(hfTestConfig(), 5, nil), safetensors.F32); err != nil {
		t.Fatal(err)
	}
	boom := errors.New("boom")
	fail := func(w []float32, rows, cols int) (quant.Matrix, error) { return nil, boom }
	w, err := loadHFStream(context.Background(), dir, streamOptions{quantizer: fail})
	if w != nil || !errors.Is(err, boom) || !strings.Contains(err.Error(), "model.safetensors") || !strings.Contains(err.Error(), "quantizing model.layers.") {
		t.Fatalf("got %v, %v; want an error naming the file and linear, wrapping boom", w, err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := loadHFStream(ctx, dir, streamOptions{quantizer: nf4.Quantizer(nf4.Options{})}); !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled load: got %v", err)
	}
}

// TestLoadQuantizerRefusesNonFinite: a NaN in a linear stops a streaming
// load with an error naming the tensor and element, before quantizing.
func TestLoadQuantizerRefusesNonFinite(t *testing.T) {
	w := hfRandomWeights(hfTestConfig(), 5, nil)
	w.Layers[1].Up.Dense[3] = float32(math.NaN())
	dir := t.TempDir()
	if err := WriteHF(dir, w, safetensors.F32); err != nil {
		t.Fatal(err)
	}
	_, err := Load(context.Background(), dir, LoadOptions{WeightsOnly: true, Quantizer: nf4.Quantizer(nf4.Options{})})
	if err == nil || !strings.Contains(err.Error(), "model.layers.1.mlp.up_proj.weight element 3 is NaN") {
		t.Fatalf("got %v", err)
	}
}

// TestAllFinite compares allFinite with firstNonFinite for every special
// value (NaNs, ±Inf, and the finite values nearest them) at every position
// of short slices, odd and even, and of a slice offset by one element.
func TestAllFinite(t *testing.T) {
	specials := []float32{float32(math.NaN()), float32(math.Inf(1)), float32(math.Inf(-1)),
		math.Float32frombits(0x7f800001), math.Float32frombits(0xffffffff),
		math.MaxFloat32, -math.MaxFloat32, math.SmallestNonzeroFloat32, 0, float32(math.Copysign(0, -1))}
	for n := range 21 {
		base := make([]float32, n+1)
		for i := range base {
			base[i] = float32(i) - 7.5
		}
		for _, w := range [][]float32{base[:n], base[1:]} {
			require.True(t, allFinite(w))
			for pos := range w {
				for _, v := range specials {
					saved := w[pos]
					w[pos] = v
					require.Equalf(t, kernels.FirstNonFinite(w) < 0, allFinite(w), "len %d, %v at %d", len(w), v, pos)
					require.Equal(t, kernels.FirstNonFinite(w), firstNonFiniteParallel(w))
					w[pos] = saved
				}
			}
		}
	}
}

// copyFile is a tensorFile whose ReadData copies from memory, counting the
// bytes it was asked for.
type copyFile struct{ read atomic.Int64 }

func (c *copyFile) ReadData(dst, data []byte) error {
	c.read.Add(int64(len(data)))
	copy(dst, data)
	return nil
}

// TestDecodeStreamingPieces decodes tensors spanning several pieces and
// CPUs with every decoder and compares with decoding in one call; a NaN in
// the last piece, or at a piece boundary, makes it report non-finite values.
func TestDecodeStreamingPieces(t *testing.T) {
	for _, dec := range []floatDecoder{decodeF32, decodeF16, decodeBF16, decodeF64} {
		for _, n := range []int{1, streamPiece - 1, 3*streamPiece + 123} {
			src := make([]byte, n*dec.size)
			for i := range src {
				src[i] = byte(i*29 + i>>9)
			}
			// Keep every value finite: clear the top exponent bit of each.
			for i := dec.size - 1; i < len(src); i += dec.size {
				src[i] &^= 0x40
			}
			want := make([]float32, n)
			dec.decode(want, src)
			got := make([]float32, n)
			var file copyFile
			finite, err := decodeStreaming(got, src, dec, &file)
			require.NoError(t, err)
			require.True(t, finite)
			require.Equal(t, int64(len(src)), file.read.Load())
			for i := range want {
				if math.Float32bits(want[i]) != math.Float32bits(got[i]) {
					t.Fatalf("size %d, n %d: element %d: %v, want %v", dec.size, n, i, got[i], want[i])
				}
			}
			for _, pos := range []int{n - 1, min(n-1, streamPiece)} {
				bad := bytes.Clone(src)
				for b := range dec.size - 1 {
					bad[pos*dec.size+b] = 0xff
				}
				bad[pos*dec.size+dec.size-1] = 0x7f // a NaN in every format
				finite, err := decodeStreaming(got, bad, dec, &file)
				require.NoError(t, err)
				require.False(t, finite, "size %d, n %d, NaN at %d", dec.size, n, pos)
			}
		}
	}
}

// TestDecodeStreamingGGMLFinite: a ggml tensor that decodes without error
// is reported finite (so the quantizing worker skips a pass over it), and
// one with an infinite block scale is an error, not values to check.
func TestDecodeStreamingGGMLFinite(t *testing.T) {
	const rows, cols = 3, 64
	dec, err := ggmlRows("w", ggml.Q8_0, cols)
	require.NoError(t, err)
	src := make([]byte, rows*cols/32*34)
	for b := 0; b*34 < len(src); b++ {
		src[b*34], src[b*34+1] = 0x00, 0x3c // fp16 1.0
		for j := range 32 {
			src[b*34+2+j] = byte(int8(j - 16 + b))
		}
	}
	dst := make([]float32, rows*cols)
	finite, err := decodeStreaming(dst, src, dec, &copyFile{})
	require.NoError(t, err)
	require.True(t, finite)
	require.Equal(t, float32(-16+1), dst[32], "block 1's first value")

	src[2*34+1] = 0x7c // block 2's scale becomes +Inf
	_, err = decodeStreaming(dst, src, dec, &copyFile{})
	require.ErrorContains(t, err, "not finite")
}
