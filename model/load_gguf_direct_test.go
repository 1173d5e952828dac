package model

import (
	"context"
	"encoding/binary"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/golora/golora/internal/gguf"
	"github.com/golora/golora/internal/half"
	"github.com/golora/golora/internal/safetensors"
	"github.com/golora/golora/nf4"
	"github.com/golora/golora/quant/ggml"
	"github.com/stretchr/testify/require"
)

// mixedGGUF writes a random two-block model as a GGUF file whose tensors
// have every type the loader reads as it is or converts: block 0's linears
// in Q8_0, Q4_0, Q5_0, Q5_1, Q4_K, Q5_K and Q6_K, block 1's in BF16, F32 and
// F16, a BF16 embedding, a Q8_0 untied head, F32 norms and a rope_freqs
// tensor. It returns the file's path.
func mixedGGUF(t *testing.T) string {
	t.Helper()
	cfg := Config{Dim: 256, HiddenDim: 512, Layers: 2, Heads: 4, KVHeads: 2, HeadDim: 64, VocabSize: 512,
		MaxSeqLen: 64, NormEps: 1e-5, RopeTheta: 10000}
	b, err := Default()
	require.NoError(t, err)
	b.Weights = RandomWeights(cfg, 7)
	f16 := filepath.Join(t.TempDir(), "f16.gguf")
	require.NoError(t, WriteGGUF(f16, b, GGUFF16))
	data, err := os.ReadFile(f16)
	require.NoError(t, err)
	types := map[string]gguf.GGMLType{
		"blk.0.attn_q.weight": gguf.GGMLType(ggml.Q8_0), "blk.0.attn_k.weight": gguf.GGMLType(ggml.Q4_0),
		"blk.0.attn_v.weight": gguf.GGMLType(ggml.Q5_0), "blk.0.attn_output.weight": gguf.GGMLType(ggml.Q5_1),
		"blk.0.ffn_gate.weight": gguf.GGMLType(ggml.Q4_K), "blk.0.ffn_up.weight": gguf.GGMLType(ggml.Q5_K),
		"blk.0.ffn_down.weight": gguf.GGMLType(ggml.Q6_K), "output.weight": gguf.GGMLType(ggml.Q8_0),
		"blk.1.attn_q.weight": gguf.TypeBF16, "blk.1.attn_k.weight": gguf.TypeF32, "token_embd.weight": gguf.TypeBF16,
	}
	mixed := rebuildGGUF(t, data, ggufEdit{
		tensor: func(ti gguf.TensorInfo, raw []byte) (gguf.GGMLType, []uint64, []byte, bool) {
			typ, ok := types[ti.Name]
			if !ok || ti.Type != gguf.TypeF16 {
				return ti.Type, ti.Dims, raw, true
			}
			w := make([]float32, len(raw)/2)
			half.DecodeF16(w, raw)
			rows, cols := int(ti.Dims[1]), int(ti.Dims[0])
			switch typ {
			case gguf.TypeF32:
				raw = safetensors.Float32Bytes(w)
			case gguf.TypeBF16:
				raw = safetensors.BF16Bytes(w)
			default:
				m, err := ggml.Quantize(ggml.Type(typ), w, rows, cols)
				require.NoError(t, err)
				raw = m.Blocks()
			}
			return typ, ti.Dims, raw, true
		},
		extra: func(b *gguf.Builder) error {
			factors := make([]float32, cfg.HeadDim/2)
			for i := range factors {
				factors[i] = 1 + float32(i)/8
			}
			return b.AddFloat32(ropeFreqsTensor, []int{len(factors)}, factors)
		},
	})
	path := filepath.Join(t.TempDir(), "mixed.gguf")
	require.NoError(t, os.WriteFile(path, mixed, 0o644))
	return path
}

// phi3GGUF writes a random two-block Phi-3 model, whose q, k, v and gate,
// up linears are fused, as a GGUF file with its linears in typ, and returns
// the file's path.
func phi3GGUF(t *testing.T, typ ggml.Type) string {
	t.Helper()
	cfg := Config{Arch: "phi3", Dim: 256, HiddenDim: 512, Layers: 2, Heads: 4, KVHeads: 4, HeadDim: 64, RotaryDim: 32,
		VocabSize: 512, MaxSeqLen: 64, NormEps: 1e-5, RopeTheta: 10000}
	b, err := Default()
	require.NoError(t, err)
	b.Weights = RandomWeights(cfg, 9)
	path := filepath.Join(t.TempDir(), "phi3.gguf")
	require.NoError(t, WriteGGUF(path, b, typ))
	return path
}

// skipWithoutDirect skips the test when the GGUF file at path cannot be
// read with O_DIRECT (a temporary directory on tmpfs, another OS), where the
// loader falls back to the page cache.
func skipWithoutDirect(t *testing.T, path string) {
	t.Helper()
	f, err := gguf.Open(path)
	require.NoError(t, err)
	defer f.Close()
	raw, err := f.TensorBytes("token_embd.weight")
	require.NoError(t, err)
	d := newDirectReader(context.Background(), []streamRange{{f, raw}})
	if d == nil {
		t.Skip("O_DIRECT is not supported on the test's temporary directory")
	}
	d.close()
}

// TestGGUFDirectReaderNeedsAFile: a GGUF file parsed from memory has no file
// to read with O_DIRECT, so the loader reads it as it is.
func TestGGUFDirectReaderNeedsAFile(t *testing.T) {
	data, err := os.ReadFile(stories260KGGUFPath)
	require.NoError(t, err)
	f, err := gguf.Parse(data)
	require.NoError(t, err)
	raw, err := f.TensorBytes("token_embd.weight")
	require.NoError(t, err)
	if d := newDirectReader(context.Background(), []streamRange{{f, raw}}); d != nil {
		d.close()
		t.Fatal("a direct reader for a GGUF file parsed from memory")
	}
	w, _, err := parseGGUF(data)
	require.NoError(t, err)
	require.NoError(t, w.Validate())
}

// TestLoadGGUFUncachedMatches: a GGUF file with tensors of every type loads
// to the same weights read with O_DIRECT (as a file too large for the page
// cache is) as through the page cache: without a quantizer, with NF4 (the
// BF16 embedding kept 16-bit, the block linears kept as they are), with
// float32 embeddings, requantizing the block linears, and with the
// embedding and head read last into memory populated ahead; and so does a
// Phi-3 file, whose fused tensors are split, in F16 and Q8_0.
func TestLoadGGUFUncachedMatches(t *testing.T) {
	path := mixedGGUF(t)
	skipWithoutDirect(t, path)
	q := nf4.Quantizer(nf4.Options{})
	ctx := context.Background()
	load := func(path string, so streamOptions) *Weights {
		t.Helper()
		m, err := loadGGUFStream(ctx, path, so)
		require.NoError(t, err)
		return m.weights
	}
	for name, so := range map[string]streamOptions{
		"dense":                  {},
		"nf4":                    {quantizer: q},
		"nf4 float32":            {quantizer: q, float32Embedding: true},
		"nf4 requantize":         {quantizer: q, requantize: true},
		"nf4 read last":          {quantizer: q, prefaultMin: 1},
		"nf4 requantize float32": {quantizer: q, requantize: true, float32Embedding: true},
	} {
		t.Run(name, func(t *testing.T) {
			cached := load(path, so)
			so.uncached = true
			uncached := load(path, so)
			require.NoError(t, uncached.Validate())
			require.NotNil(t, uncached.RopeFreqFactors)
			if !so.requantize {
				for i, want := range []ggml.Type{ggml.Q8_0, ggml.Q4_0, ggml.Q5_0, ggml.Q5_1, ggml.Q4_K, ggml.Q5_K, ggml.Q6_K} {
					lin := *uncached.Layers[0].Linears()[i].Linear
					if m, ok := lin.Quantized.(*ggml.Matrix); !ok || m.Type() != want {
						t.Errorf("%s is %T, want a %v ggml matrix", lin.Name, lin.Quantized, want)
					}
				}
			}
			if !reflect.DeepEqual(cached, uncached) {
				t.Error("weights read with O_DIRECT differ from those read through the page cache")
			}
		})
	}
	for _, typ := range []ggml.Type{GGUFF16, ggml.Q8_0} {
		path := phi3GGUF(t, typ)
		for _, so := range []streamOptions{{}, {quantizer: q}} {
			cached := load(path, so)
			so.uncached = true
			if uncached := load(path, so); !reflect.DeepEqual(cached, uncached) {
				t.Errorf("phi3 %v, quantizer %v: weights read with O_DIRECT differ from those read through the page cache", typ, so.quantizer != nil)
			}
		}
	}
}

// TestLoadGGUFTruncated: a GGUF file cut short after it was opened (Open
// checks the tensors against the file's size) fails the load with an error
// naming the file and the first tensor whose bytes are missing (the same
// with O_DIRECT, which reads ahead of the loader, as through the page
// cache), with and without a quantizer; it never faults on the mapping.
func TestLoadGGUFTruncated(t *testing.T) {
	path := mixedGGUF(t)
	content, err := os.ReadFile(path)
	require.NoError(t, err)
	q := nf4.Quantizer(nf4.Options{})
	named := ""
	for _, so := range []streamOptions{{}, {uncached: true}, {quantizer: q}, {quantizer: q, uncached: true}} {
		require.NoError(t, os.WriteFile(path, content, 0o644))
		f, err := gguf.Open(path)
		require.NoError(t, err)
		require.NoError(t, os.Truncate(path, int64(f.DataOffset)+int64(len(content)-int(f.DataOffset))/2))
		_, err = fromGGUF(context.Background(), f, so)
		f.Close()
		require.Error(t, err, "uncached %v, quantizer %v", so.uncached, so.quantizer != nil)
		msg := err.Error()
		tensor, _, _ := strings.Cut(strings.TrimPrefix(msg, "gguf: tensor "), ":")
		if named == "" {
			named = tensor
		}
		if !strings.Contains(msg, path) || !strings.HasPrefix(msg, "gguf: tensor ") || tensor != named {
			t.Errorf("uncached %v, quantizer %v: error %q, want one naming %s and tensor %s", so.uncached, so.quantizer != nil, msg, path, named)
		}
	}
}

// TestLoadGGUFNonFiniteScale: a Q8_0 block whose scale is not finite fails
// the load with an error naming the tensor, whether the blocks are kept
// (the linear), dequantized piece by piece (the head, or the linear
// requantized) or read with O_DIRECT.
func TestLoadGGUFNonFiniteScale(t *testing.T) {
	data, err := os.ReadFile(mixedGGUF(t))
	require.NoError(t, err)
	q := nf4.Quantizer(nf4.Options{})
	for _, name := range []string{"output.weight", "blk.0.attn_q.weight"} {
		bad := rebuildGGUF(t, data, editTensor(name, func(ti gguf.TensorInfo, raw []byte) (gguf.GGMLType, []uint64, []byte, bool) {
			raw = append([]byte(nil), raw...)
			at := 5*int(ti.Dims[0])/32*34 + 34 // row 5, block 1 (Q8_0: an fp16 scale, 32 codes)
			raw[at], raw[at+1] = 0x00, 0x7c    // +Inf
			return ti.Type, ti.Dims, raw, true
		}))
		path := filepath.Join(t.TempDir(), "bad.gguf")
		require.NoError(t, os.WriteFile(path, bad, 0o644))
		for _, so := range []streamOptions{{}, {uncached: true}, {quantizer: q, requantize: true}, {quantizer: q, requantize: true, uncached: true}} {
			_, err := loadGGUFStream(context.Background(), path, so)
			if err == nil || !strings.Contains(err.Error(), name) || !strings.Contains(err.Error(), "not finite") {
				t.Errorf("%s, %+v: error %v, want one naming the tensor and the non-finite scale", name, so, err)
			}
		}
	}
}

// TestLoadGGUFUncachedReplaced: a file renamed over the GGUF file's path
// after Open (a download or a conversion finishing) does not change what
// the load reads: the O_DIRECT reader reads the file that was opened, or
// the load reads it through the page cache, never a different file at the
// offsets of the one that was parsed.
func TestLoadGGUFUncachedReplaced(t *testing.T) {
	path := mixedGGUF(t)
	skipWithoutDirect(t, path)
	ctx := context.Background()
	want, err := loadGGUFStream(ctx, path, streamOptions{})
	require.NoError(t, err)
	data, err := os.ReadFile(path)
	require.NoError(t, err)
	other := rebuildGGUF(t, data, editTensor("output_norm.weight", func(ti gguf.TensorInfo, raw []byte) (gguf.GGMLType, []uint64, []byte, bool) {
		raw = append([]byte(nil), raw...)
		for i := 0; i < len(raw); i += 4 {
			binary.LittleEndian.PutUint32(raw[i:], math.Float32bits(2))
		}
		return ti.Type, ti.Dims, raw, true
	}))
	require.Equal(t, len(data), len(other))
	f, err := gguf.Open(path)
	require.NoError(t, err)
	defer f.Close()
	require.NoError(t, os.WriteFile(path+".new", other, 0o644))
	require.NoError(t, os.Rename(path+".new", path))
	got, err := fromGGUF(ctx, f, streamOptions{uncached: true})
	require.NoError(t, err)
	if !reflect.DeepEqual(want.weights, got.weights) {
		t.Error("the load read the file renamed over the path, not the one opened")
	}
}
