package model

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"slices"
	"strings"

	"github.com/golora/golora/internal/atomicfile"
	"github.com/golora/golora/internal/gguf"
	"github.com/golora/golora/internal/half"
	"github.com/golora/golora/internal/kernels"
	"github.com/golora/golora/model/chat"
	"github.com/golora/golora/model/tokenizer"
	"github.com/golora/golora/quant/ggml"
)

// GGUFF32 and GGUFF16 ask WriteGGUF for unquantized matrices (ggml's F32
// and F16 type numbers); the ggml block formats it writes are ggml.Q8_0 and
// ggml.Q4_K.
const (
	GGUFF32 = ggml.Type(gguf.TypeF32)
	GGUFF16 = ggml.Type(gguf.TypeF16)
)

// llamaFileTypes are llama.cpp's general.file_type values (llama.h,
// LLAMA_FTYPE_ALL_F32, LLAMA_FTYPE_MOSTLY_*) for the types WriteGGUF writes.
var llamaFileTypes = map[ggml.Type]uint32{GGUFF32: 0, GGUFF16: 1, ggml.Q8_0: 7, ggml.Q4_K: 15}

// WriteGGUF writes b as a llama.cpp GGUF file at path, complete or not at
// all (the file is written aside and renamed).
//
// The architecture follows Config.Arch as llama.cpp's convert_hf_to_gguf.py
// writes it: "llama" for Llama 2 and 3 and Mistral (whose sliding window is
// written as llama.attention.sliding_window, which golora honours and
// llama.cpp's llama architecture ignores), "qwen2" with the q/k/v biases,
// "qwen3" with the q/k norms, "phi3" with q, k, v fused in attn_qkv and
// gate, up in ffn_up and partial rotary as rope.dimension_count. Query and
// key rows go back to GGUF's interleaved RoPE layout for llama only. Llama
// 3's rope scaling is written as the rope_freqs tensor (one divisor per
// frequency, as the converter computes it), linear scaling as
// rope.scaling.*, Phi-3's longrope as its rope_factors_long and
// rope_factors_short tensors with rope.scaling.original_context_length and
// rope.scaling.attn_factor (phi3 only).
//
// typ is GGUFF32, GGUFF16, ggml.Q8_0 or ggml.Q4_K. For a block type it
// follows llama-quantize's rules for a single target type: every matrix —
// embedding, block linears, an untied output head — is stored in typ, or
// where its rows are not a whole number of typ's blocks in the type
// llama-quantize falls back to (ggml.FallbackFor), or F16 where nothing
// fits. Norms, biases and rope factors stay F32; a tied head is left out, as
// llama.cpp expects. Linears held quantized (NF4, ggml) are dequantized
// first, so a merged or a quantized model can be written.
//
// The tokenizer is written as tokenizer.ggml.model "llama" (SentencePiece,
// also a Llama-2-style tokenizer.json, see tokenizer.BPE.SentencePiece) or
// "gpt2" (byte-level BPE, see tokenizer.BPE.ByteLevelBPEConfig: tokens,
// token types, merges, the pre-tokenizer's name, BOS, EOS, add_bos_token),
// padded with unused tokens up to the embedding's rows; the chat template
// (Base.ChatTemplate), if the model has one, as tokenizer.chat_template.
func WriteGGUF(path string, b *Base, typ ggml.Type) error {
	if err := writeGGUF(path, b, typ); err != nil {
		return fmt.Errorf("model: writing %s: %w", path, err)
	}
	return nil
}

func writeGGUF(path string, b *Base, typ ggml.Type) error {
	fileType, ok := llamaFileTypes[typ]
	if !ok {
		return fmt.Errorf("GGUF type %v is not one golora writes (f32, f16, q8_0, q4_K)", typ)
	}
	w := b.Weights
	if err := w.Validate(); err != nil {
		return err
	}
	c := w.Config
	ga, err := ggufWriteArch(c)
	if err != nil {
		return err
	}
	if c.RopeScaling.Type == "longrope" {
		switch {
		case !ga.fused:
			return fmt.Errorf("longrope is written for GGUF architecture phi3 only, not %s", ga.name)
		case w.RopeFreqFactors == nil || w.RopeLongFactors == nil:
			return errors.New("longrope needs its short and long factors (Weights.RopeFreqFactors and RopeLongFactors) to be written")
		}
	}
	var gb gguf.Builder
	if err := ggufMetadata(&gb, c, ga, fileType); err != nil {
		return err
	}
	if err := ggufTokenizerMetadata(&gb, b); err != nil {
		return err
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
	matrix("token_embd.weight", c.VocabSize, c.Dim, w.EmbeddingFloat32)
	vector("output_norm.weight", w.Norm)
	if !c.TiedOutput {
		matrix("output.weight", c.VocabSize, c.Dim, w.Output.float32s)
	}
	if c.RopeScaling.Type == "longrope" {
		vector(ropeFactorsLongTensor, w.RopeLongFactors)
		vector(ropeFactorsShortTensor, w.RopeFreqFactors)
	} else {
		factors, err := ggufRopeFactors(w, ga)
		if err != nil {
			return err
		}
		if factors != nil {
			vector(ropeFreqsTensor, factors)
		}
	}
	for l := range w.Layers {
		layer := &w.Layers[l]
		blk := func(s string) string { return fmt.Sprintf("blk.%d.%s.weight", l, s) }
		vector(blk("attn_norm"), layer.AttnNorm)
		vector(blk("ffn_norm"), layer.MLPNorm)
		for i, nl := range layer.Linears() {
			if ga.fused && ggufFusedPart(i) {
				continue
			}
			lin := *nl.Linear
			heads := ga.permutedHeads(i, c)
			matrix(blk(ggufLinearNames[i]), lin.Out, lin.In, func() ([]float32, error) {
				v, err := lin.float32s()
				if err != nil || heads == 0 {
					return v, err
				}
				v = slices.Clone(v)
				return v, halvesToInterleaved(v, heads, c.HeadDim, lin.In)
			})
		}
		if ga.fused {
			for _, fz := range []struct {
				name  string
				parts []*Linear
			}{{"attn_qkv", []*Linear{layer.Q, layer.K, layer.V}}, {"ffn_up", []*Linear{layer.Gate, layer.Up}}} {
				rows := 0
				for _, lin := range fz.parts {
					rows += lin.Out
				}
				matrix(blk(fz.name), rows, c.Dim, func() ([]float32, error) {
					v := make([]float32, 0, rows*c.Dim)
					for _, lin := range fz.parts {
						part, err := lin.float32s()
						if err != nil {
							return nil, err
						}
						v = append(v, part...)
					}
					return v, nil
				})
			}
		}
		if ga.qkvBias {
			for _, bias := range []struct {
				name string
				lin  *Linear
			}{{"attn_q", layer.Q}, {"attn_k", layer.K}, {"attn_v", layer.V}} {
				vector(fmt.Sprintf("blk.%d.%s.bias", l, bias.name), bias.lin.Bias)
			}
		}
		if ga.qkNorm {
			vector(blk("attn_q_norm"), layer.QNorm)
			vector(blk("attn_k_norm"), layer.KNorm)
		}
	}
	slices.SortStableFunc(tensors, func(a, b tensor) int { return gguf.CompareTensorNames(a.name, b.name) })
	for _, t := range tensors {
		if err := t.add(); err != nil {
			return err
		}
	}
	return atomicfile.WriteFile(path, func(out io.Writer) error {
		_, err := gb.WriteTo(out)
		return err
	}, 0o644)
}

// ggufWriteArch returns the GGUF architecture a configuration is written
// as, refusing what that architecture cannot express.
func ggufWriteArch(c Config) (ggufArch, error) {
	name := c.Arch
	switch name {
	case "", "mistral":
		// llama.cpp's converter writes Mistral models as llama.
		name = "llama"
	}
	ga, err := ggufArchOf(name)
	if err != nil {
		return ga, err
	}
	switch {
	case c.QKVBias != ga.qkvBias:
		return ga, fmt.Errorf("q/k/v biases %t, but GGUF architecture %s has them %t", c.QKVBias, ga.name, ga.qkvBias)
	case c.QKNorm != ga.qkNorm:
		return ga, fmt.Errorf("q/k norms %t, but GGUF architecture %s has them %t", c.QKNorm, ga.name, ga.qkNorm)
	case ga.permuted && c.Rotary() != c.HeadDim:
		return ga, fmt.Errorf("partial rotary (%d of %d values) cannot be written for %s's interleaved RoPE layout", c.Rotary(), c.HeadDim, ga.name)
	}
	return ga, nil
}

// ggufRopeFactors returns the rope_freqs tensor to write, or nil: Llama 3's
// rope scaling as one divisor per frequency (the unscaled frequency over the
// scaled one, which is the converter's formula), times Weights.RopeFreqFactors
// if the model has them (as read from a GGUF file).
func ggufRopeFactors(w *Weights, ga ggufArch) ([]float32, error) {
	c := w.Config
	if c.RopeScaling.Type != "llama3" && w.RopeFreqFactors == nil {
		return nil, nil
	}
	if ga.name != "llama" {
		return nil, fmt.Errorf("rope frequency factors (rope_freqs) are written for GGUF architecture llama only, not %s", ga.name)
	}
	factors := make([]float32, c.Rotary()/2)
	for i := range factors {
		factors[i] = 1
	}
	if c.RopeScaling.Type == "llama3" {
		base := kernels.RopeInvFreq(c.Rotary(), c.RopeTheta)
		scaled := c.RopeInvFreq()
		for i := range factors {
			factors[i] = float32(base[i] / scaled[i])
		}
	}
	for i, f := range w.RopeFreqFactors {
		factors[i] *= f
	}
	return factors, nil
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
	if typ == GGUFF32 {
		data := make([]byte, 4*len(v))
		for i, x := range v {
			binary.LittleEndian.PutUint32(data[4*i:], math.Float32bits(x))
		}
		return gguf.TypeF32, data, nil
	}
	if t, ok := ggml.FallbackFor(typ, cols); ok && typ != GGUFF16 { // F16 has no blocks
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

// ggufMetadata adds the general.* and <arch>.* hyperparameters.
func ggufMetadata(gb *gguf.Builder, c Config, ga ggufArch, fileType uint32) error {
	k := func(key string) string { return ga.name + "." + key }
	kvs := []struct {
		key string
		v   any
	}{
		{"general.architecture", ga.name},
		{"general.quantization_version", uint32(2)},
		{"general.file_type", fileType},
		{k("context_length"), uint32(c.MaxSeqLen)},
		{k("embedding_length"), uint32(c.Dim)},
		{k("block_count"), uint32(c.Layers)},
		{k("feed_forward_length"), uint32(c.HiddenDim)},
		{k("rope.dimension_count"), uint32(c.Rotary())},
		{k("attention.head_count"), uint32(c.Heads)},
		{k("attention.head_count_kv"), uint32(c.KVHeads)},
		{k("attention.key_length"), uint32(c.HeadDim)},
		{k("attention.value_length"), uint32(c.HeadDim)},
		{k("attention.layer_norm_rms_epsilon"), float32(c.NormEps)},
		{k("rope.freq_base"), float32(c.RopeTheta)},
	}
	if c.SlidingWindow > 0 {
		kvs = append(kvs, struct {
			key string
			v   any
		}{k("attention.sliding_window"), uint32(c.SlidingWindow)})
	}
	if c.RopeScaling.Type == "longrope" {
		// As convert_hf_to_gguf.py's Phi3MiniModel: the factors are the
		// rope_factors_long and rope_factors_short tensors.
		kvs = append(kvs, []struct {
			key string
			v   any
		}{{k("rope.scaling.original_context_length"), uint32(c.RopeScaling.OriginalMaxPos)},
			{k("rope.scaling.attn_factor"), float32(c.RopeScaling.AttentionFactor)}}...)
	}
	if c.RopeScaling.Type == "linear" {
		kvs = append(kvs, []struct {
			key string
			v   any
		}{{k("rope.scaling.type"), "linear"}, {k("rope.scaling.factor"), float32(c.RopeScaling.Factor)}}...)
	}
	for _, kv := range kvs {
		if err := gb.AddKV(kv.key, kv.v); err != nil {
			return err
		}
	}
	return nil
}

// ggufTokenizerMetadata adds the tokenizer.* metadata of b's tokenizer and
// chat template.
func ggufTokenizerMetadata(gb *gguf.Builder, b *Base) error {
	vocab := b.Weights.Config.VocabSize
	var addErr error
	add := func(key string, v any) {
		if err := gb.AddKV(key, v); err != nil && addErr == nil {
			addErr = err
		}
	}
	special := func(key string, id int) {
		if id >= 0 {
			add(key, uint32(id))
		}
	}
	tok := b.Tokenizer
	if bpe, ok := tok.(*tokenizer.BPE); ok {
		c, err := bpe.ByteLevelBPEConfig(vocab)
		if err == nil {
			add("tokenizer.ggml.model", "gpt2")
			add("tokenizer.ggml.pre", c.Pre)
			add("tokenizer.ggml.tokens", c.Tokens)
			add("tokenizer.ggml.token_type", c.Types)
			add("tokenizer.ggml.merges", c.Merges)
			special(ggufBOSKey, c.BOS)
			special(ggufEOSKey, c.EOS)
			add(ggufAddBOSKey, c.AddBOS)
			if addErr != nil {
				return addErr
			}
			return ggufChatMetadata(gb, b)
		}
		sp, spErr := bpe.SentencePiece(vocab)
		if spErr != nil {
			return fmt.Errorf("the tokenizer has no GGUF form: %w; %w", err, spErr)
		}
		tok = sp
	}
	sp, ok := tok.(*tokenizer.SentencePiece)
	if !ok {
		return fmt.Errorf("the tokenizer is %T; GGUF files hold SentencePiece and byte-level BPE tokenizers", b.Tokenizer)
	}
	n := sp.VocabSize()
	if n != vocab {
		return fmt.Errorf("the tokenizer has %d tokens, the model's vocabulary %d (GGUF needs one per embedding row)", n, vocab)
	}
	tokens, scores, types := make([]string, n), make([]float32, n), make([]int32, n)
	for i := range n {
		tokens[i], scores[i], types[i] = sp.Piece(i), sp.Score(i), int32(sp.Type(i))
	}
	add("tokenizer.ggml.model", "llama")
	add("tokenizer.ggml.tokens", tokens)
	add("tokenizer.ggml.scores", scores)
	add("tokenizer.ggml.token_type", types)
	special(ggufBOSKey, sp.BOS())
	special(ggufEOSKey, sp.EOS())
	if addErr != nil {
		return addErr
	}
	return ggufChatMetadata(gb, b)
}

// ggufChatMetadata adds b's chat templates, if it has any, as llama.cpp's
// gguf-py writes a list of named ones: the "default" as
// tokenizer.chat_template, each other as tokenizer.chat_template.NAME (NAME
// with characters other than ASCII letters and digits turned into "_"),
// and those names as tokenizer.chat_templates.
func ggufChatMetadata(gb *gguf.Builder, b *Base) error {
	names, err := b.ChatTemplateNames()
	switch {
	case errors.Is(err, ErrNoChatTemplate):
		return nil
	case err != nil:
		return err
	}
	var others []string
	for _, name := range names {
		tmpl, err := b.ChatTemplateNamed(name)
		if err != nil {
			return err
		}
		key := ggufChatTemplateKey
		if name != chat.DefaultName {
			name = ggufTemplateName(name)
			if slices.Contains(others, name) {
				return fmt.Errorf("chat templates: two names become %q in GGUF", name)
			}
			others = append(others, name)
			key = ggufNamedTemplatePfx + name
		}
		if err := gb.AddKV(key, tmpl.Text()); err != nil {
			return err
		}
	}
	if len(others) == 0 {
		return nil
	}
	return gb.AddKV(ggufChatTemplatesKey, others)
}

// ggufTemplateName is a chat template's name as gguf-py writes it in a key:
// characters other than ASCII letters and digits become "_".
func ggufTemplateName(name string) string {
	return strings.Map(func(r rune) rune {
		if 'a' <= r && r <= 'z' || 'A' <= r && r <= 'Z' || '0' <= r && r <= '9' {
			return r
		}
		return '_'
	}, name)
}
