package model

import (
	"cmp"
	"encoding/binary"
	"fmt"
	"io"
	"math"
	"slices"
	"strings"

	"github.com/golora/golora/internal/atomicfile"
	"github.com/golora/golora/internal/gguf"
	"github.com/golora/golora/internal/half"
	"github.com/golora/golora/model/tokenizer"
	"github.com/golora/golora/quant/ggml"
)

// llamaFileTypes are llama.cpp's general.file_type values (llama.h,
// LLAMA_FTYPE_MOSTLY_*) for the types WriteGGUF writes.
var llamaFileTypes = map[ggml.Type]uint32{ggml.Q8_0: 7, ggml.Q4_K: 15}

// WriteGGUF writes b as a llama.cpp GGUF file of architecture "llama" at
// path, complete or not at all (the file is written aside and renamed). It
// follows llama-quantize's rules for a single target type typ (Q8_0 or Q4_K):
// every matrix — embedding, block linears, an untied output head — is stored
// in typ, or where its rows are not a whole number of typ's blocks in the
// type llama-quantize falls back to (ggml.FallbackFor), or F16 where nothing
// fits; norms stay F32; a tied head is left out, as llama.cpp expects. Query
// and key rows go back to GGUF's interleaved RoPE layout. Linears held
// quantized (NF4, ggml) are dequantized first, so a merged or a quantized
// model can be written. The tokenizer must be SentencePiece (it is written as
// tokenizer.ggml.model "llama"); a byte-level BPE tokenizer is refused for
// now.
func WriteGGUF(path string, b *Base, typ ggml.Type) error {
	fileType, ok := llamaFileTypes[typ]
	if !ok {
		return fmt.Errorf("model: writing %s: GGUF type %v is not one golora writes (q8_0, q4_K)", path, typ)
	}
	sp, ok := b.Tokenizer.(*tokenizer.SentencePiece)
	if !ok {
		return fmt.Errorf("model: writing %s: the tokenizer is %T; only SentencePiece tokenizers are written to GGUF so far", path, b.Tokenizer)
	}
	w := b.Weights
	if err := w.Validate(); err != nil {
		return fmt.Errorf("model: writing %s: %w", path, err)
	}
	var gb gguf.Builder
	if err := ggufMetadata(&gb, w.Config, sp, fileType); err != nil {
		return fmt.Errorf("model: writing %s: %w", path, err)
	}
	type tensor struct {
		name string
		add  func() error
	}
	var tensors []tensor
	vector := func(name string, v []float32) {
		tensors = append(tensors, tensor{name, func() error { return gb.AddFloat32(name, []int{len(v)}, v) }})
	}
	matrix := func(name string, rows, cols int, values func() ([]float32, error)) {
		tensors = append(tensors, tensor{name, func() error {
			v, err := values()
			if err != nil {
				return err
			}
			t, data, err := ggufEncode(typ, v, rows, cols)
			if err != nil {
				return fmt.Errorf("tensor %s: %w", name, err)
			}
			return gb.AddMatrix(name, t, rows, cols, data)
		}})
	}
	c := w.Config
	matrix("token_embd.weight", c.VocabSize, c.Dim, func() ([]float32, error) { return w.Embedding, nil })
	vector("output_norm.weight", w.Norm)
	if !c.TiedOutput {
		matrix("output.weight", c.VocabSize, c.Dim, w.Output.float32s)
	}
	for l := range w.Layers {
		layer := &w.Layers[l]
		blk := func(s string) string { return fmt.Sprintf("blk.%d.%s.weight", l, s) }
		vector(blk("attn_norm"), layer.AttnNorm)
		vector(blk("ffn_norm"), layer.MLPNorm)
		for i, nl := range layer.Linears() {
			lin := *nl.Linear
			heads := map[int]int{0: c.Heads, 1: c.KVHeads}[i]
			matrix(blk(ggufLinearNames[i]), lin.Out, lin.In, func() ([]float32, error) {
				v, err := lin.float32s()
				if err != nil || heads == 0 {
					return v, err
				}
				v = slices.Clone(v)
				return v, halvesToInterleaved(v, heads, c.HeadDim, lin.In)
			})
		}
	}
	// llama-quantize's order: tensors outside the blocks, then block by
	// block, by name within each.
	slices.SortStableFunc(tensors, func(a, b tensor) int {
		return cmp.Or(cmp.Compare(ggufLayerOf(a.name), ggufLayerOf(b.name)), strings.Compare(a.name, b.name))
	})
	for _, t := range tensors {
		if err := t.add(); err != nil {
			return fmt.Errorf("model: writing %s: %w", path, err)
		}
	}
	return atomicfile.WriteFile(path, func(out io.Writer) error {
		_, err := gb.WriteTo(out)
		return err
	}, 0o644)
}

// float32s returns the linear's values, dequantized if it is quantized.
func (lin *Linear) float32s() ([]float32, error) {
	if lin.Quantized == nil {
		return lin.Dense, nil
	}
	v := make([]float32, lin.Out*lin.In)
	if err := lin.Quantized.DequantizeRows(v, 0, lin.Out); err != nil {
		return nil, fmt.Errorf("%s: %w", lin.Name, err)
	}
	return v, nil
}

// ggufEncode quantizes a [rows, cols] matrix as llama-quantize does for the
// target typ, returning the type used and the data.
func ggufEncode(typ ggml.Type, v []float32, rows, cols int) (gguf.GGMLType, []byte, error) {
	if t, ok := ggml.FallbackFor(typ, cols); ok {
		m, err := ggml.Quantize(t, v, rows, cols)
		if err != nil {
			return 0, nil, err
		}
		return gguf.GGMLType(t), m.Blocks(), nil
	}
	data := make([]byte, 2*len(v))
	for i, x := range v {
		if math.IsNaN(float64(x)) || math.IsInf(float64(x), 0) {
			return 0, nil, fmt.Errorf("element %d is %v", i, x)
		}
		binary.LittleEndian.PutUint16(data[2*i:], half.Float32ToF16(x))
	}
	return gguf.TypeF16, data, nil
}

// ggufMetadata adds the llama.* hyperparameters and the SentencePiece
// tokenizer.
func ggufMetadata(gb *gguf.Builder, c Config, sp *tokenizer.SentencePiece, fileType uint32) error {
	n := sp.VocabSize()
	tokens, scores, types := make([]string, n), make([]float32, n), make([]int32, n)
	for i := range n {
		tokens[i], scores[i], types[i] = sp.Piece(i), sp.Score(i), int32(sp.Type(i))
	}
	if n != c.VocabSize {
		return fmt.Errorf("the tokenizer has %d tokens, the model's vocabulary %d (GGUF needs one per embedding row)", n, c.VocabSize)
	}
	kvs := []struct {
		key string
		v   any
	}{
		{"general.architecture", "llama"},
		{"general.quantization_version", uint32(2)},
		{"general.file_type", fileType},
		{"llama.context_length", uint32(c.MaxSeqLen)},
		{"llama.embedding_length", uint32(c.Dim)},
		{"llama.block_count", uint32(c.Layers)},
		{"llama.feed_forward_length", uint32(c.HiddenDim)},
		{"llama.rope.dimension_count", uint32(c.HeadDim)},
		{"llama.attention.head_count", uint32(c.Heads)},
		{"llama.attention.head_count_kv", uint32(c.KVHeads)},
		{"llama.attention.key_length", uint32(c.HeadDim)},
		{"llama.attention.value_length", uint32(c.HeadDim)},
		{"llama.attention.layer_norm_rms_epsilon", float32(c.NormEps)},
		{"llama.rope.freq_base", float32(c.RopeTheta)},
		{"tokenizer.ggml.model", "llama"},
		{"tokenizer.ggml.tokens", tokens},
		{"tokenizer.ggml.scores", scores},
		{"tokenizer.ggml.token_type", types},
	}
	for _, kv := range kvs {
		if err := gb.AddKV(kv.key, kv.v); err != nil {
			return err
		}
	}
	for _, special := range []struct {
		key string
		id  int
	}{{"tokenizer.ggml.bos_token_id", sp.BOS()}, {"tokenizer.ggml.eos_token_id", sp.EOS()}} {
		if special.id >= 0 {
			if err := gb.AddKV(special.key, uint32(special.id)); err != nil {
				return err
			}
		}
	}
	return nil
}

// ggufLayerOf returns N for a tensor named "blk.N.…", else −1.
func ggufLayerOf(name string) int {
	rest, ok := strings.CutPrefix(name, "blk.")
	if !ok {
		return -1
	}
	n, i := 0, 0
	for ; i < len(rest) && rest[i] >= '0' && rest[i] <= '9'; i++ {
		n = 10*n + int(rest[i]-'0')
	}
	if i == 0 || i == len(rest) || rest[i] != '.' {
		return -1
	}
	return n
}
