package model

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/golora/golora/internal/gguf"
	"github.com/golora/golora/model/tokenizer"
	"github.com/golora/golora/quant/ggml"
)

// The GGUF conversion of stories260K (testdata/README.md).
const stories260KGGUFPath = "testdata/stories260K.gguf"

// assertSameWeights checks that two Weights hold identical tensors, bit for
// bit, with the same names, shapes and tying. MaxSeqLen is compared only if
// sameSeqLen.
func assertSameWeights(t *testing.T, want, got *Weights, sameSeqLen bool) {
	t.Helper()
	wc, gc := want.Config, got.Config
	if !sameSeqLen {
		wc.MaxSeqLen, gc.MaxSeqLen = 0, 0
	}
	require.Equal(t, wc, gc)
	require.Equal(t, want.Embedding, got.Embedding, "embedding")
	require.Equal(t, want.Norm, got.Norm, "final norm")
	require.Equal(t, *want.Output, *got.Output, "output head")
	require.Len(t, got.Layers, len(want.Layers))
	for l := range want.Layers {
		wl, gl := want.Layers[l], got.Layers[l]
		require.Equal(t, wl.AttnNorm, gl.AttnNorm, "layer %d attn norm", l)
		require.Equal(t, wl.MLPNorm, gl.MLPNorm, "layer %d mlp norm", l)
		for i, pair := range [][2]*Linear{{wl.Q, gl.Q}, {wl.K, gl.K}, {wl.V, gl.V}, {wl.O, gl.O}, {wl.Gate, gl.Gate}, {wl.Up, gl.Up}, {wl.Down, gl.Down}} {
			require.Equal(t, *pair[0], *pair[1], "layer %d linear %d", l, i)
		}
	}
}

// The fixtures README says the GGUF's 48 tensors are bit-identical to the
// .bin's (attn_q/attn_k included: llama.cpp's llama2.c converter keeps the
// interleaved rows), so both loaders must produce identical Weights. The
// GGUF's context_length is 2048 where the .bin's seq_len is 512.
func TestLoadGGUFMatchesLlama2C(t *testing.T) {
	bin, err := loadLlama2C(stories260KBinPath)
	require.NoError(t, err)
	g, tok, err := loadGGUF(stories260KGGUFPath)
	require.NoError(t, err)
	require.NoError(t, g.Validate())
	assert.Equal(t, 512, bin.Config.MaxSeqLen)
	assert.Equal(t, 2048, g.Config.MaxSeqLen)
	assertSameWeights(t, bin, g, false)
	assert.True(t, g.Config.TiedOutput, "output.weight equal to token_embd is treated as tied")
	assert.Same(t, &g.Embedding[0], &g.Output.Dense[0])

	// Golden ids from the fixtures README (llama2.c's documented encoding).
	assert.Equal(t, 512, tok.VocabSize())
	assert.Equal(t, 1, tok.BOS())
	assert.Equal(t, 2, tok.EOS())
	assert.Equal(t, []int{403, 407, 261, 378}, tok.Encode("Once upon a time"))

	binTok, err := tokenizer.LoadLlama2C("stories260k/tok512.bin", 512)
	require.NoError(t, err)
	text := "Lily and Ben went to the park. They saw a big, red ball!"
	assert.Equal(t, binTok.Encode(text), tok.Encode(text))
	assert.Equal(t, text, tok.Decode(tok.Encode(text)))
}

// ggufEdit rebuilds a GGUF file, letting the test change metadata and
// tensors: kv and tensor return the replacement and whether to keep it.
type ggufEdit struct {
	kv     func(key string, v gguf.Value) (any, bool)
	tensor func(ti gguf.TensorInfo, raw []byte) (gguf.GGMLType, []uint64, []byte, bool)
	extra  func(b *gguf.Builder) error
}

func rebuildGGUF(t *testing.T, data []byte, e ggufEdit) []byte {
	t.Helper()
	f, err := gguf.Parse(data)
	require.NoError(t, err)
	var b gguf.Builder
	for _, kv := range f.KVs() {
		val, keep := any(kv.Value), true
		if e.kv != nil {
			val, keep = e.kv(kv.Key, kv.Value)
		}
		if keep {
			require.NoError(t, b.AddKV(kv.Key, val))
		}
	}
	for _, ti := range f.Tensors() {
		raw, err := f.TensorBytes(ti.Name)
		require.NoError(t, err)
		typ, dims, keep := ti.Type, ti.Dims, true
		if e.tensor != nil {
			typ, dims, raw, keep = e.tensor(ti, raw)
		}
		if keep {
			require.NoError(t, b.AddTensor(ti.Name, typ, dims, raw))
		}
	}
	if e.extra != nil {
		require.NoError(t, e.extra(&b))
	}
	var buf bytes.Buffer
	_, err = b.WriteTo(&buf)
	require.NoError(t, err)
	return buf.Bytes()
}

func setKV(key string, val any) ggufEdit {
	return ggufEdit{kv: func(k string, v gguf.Value) (any, bool) {
		if k == key {
			return val, val != nil
		}
		return v, true
	}}
}

func editTensor(name string, fn func(ti gguf.TensorInfo, raw []byte) (gguf.GGMLType, []uint64, []byte, bool)) ggufEdit {
	return ggufEdit{tensor: func(ti gguf.TensorInfo, raw []byte) (gguf.GGMLType, []uint64, []byte, bool) {
		if ti.Name == name {
			return fn(ti, raw)
		}
		return ti.Type, ti.Dims, raw, true
	}}
}

func TestLoadGGUFOutputTying(t *testing.T) {
	data, err := os.ReadFile(stories260KGGUFPath)
	require.NoError(t, err)
	bin, err := loadLlama2C(stories260KBinPath)
	require.NoError(t, err)

	// Without output.weight the head is tied, as in llama.cpp.
	noOutput := rebuildGGUF(t, data, editTensor("output.weight", func(gguf.TensorInfo, []byte) (gguf.GGMLType, []uint64, []byte, bool) {
		return 0, nil, nil, false
	}))
	w, _, err := parseGGUF(noOutput)
	require.NoError(t, err)
	assertSameWeights(t, bin, w, false)

	// A head that differs from the embedding is kept separately.
	changed := rebuildGGUF(t, data, editTensor("output.weight", func(ti gguf.TensorInfo, raw []byte) (gguf.GGMLType, []uint64, []byte, bool) {
		raw = append([]byte(nil), raw...)
		binary.LittleEndian.PutUint32(raw[4:], 0x3f800000) // element 1 := 1.0
		return ti.Type, ti.Dims, raw, true
	}))
	w, _, err = parseGGUF(changed)
	require.NoError(t, err)
	require.NoError(t, w.Validate())
	assert.False(t, w.Config.TiedOutput)
	assert.Equal(t, float32(1), w.Output.Dense[1])
	assert.Equal(t, bin.Embedding, w.Embedding)
	assert.Equal(t, bin.Embedding[2:], w.Output.Dense[2:])
}

// patchDims returns a copy of a GGUF file in which the first dim (innermost)
// of the named tensor's description is set to d.
func patchDims(t *testing.T, data []byte, name string, d uint64) []byte {
	t.Helper()
	needle := binary.LittleEndian.AppendUint64(nil, uint64(len(name)))
	needle = append(needle, name...)
	i := bytes.Index(data, needle)
	require.GreaterOrEqual(t, i, 0)
	out := append([]byte(nil), data...)
	binary.LittleEndian.PutUint64(out[i+len(needle)+4:], d) // skip the uint32 dim count
	return out
}

func TestLoadGGUFErrors(t *testing.T) {
	data, err := os.ReadFile(stories260KGGUFPath)
	require.NoError(t, err)
	q4 := func(ti gguf.TensorInfo, _ []byte) (gguf.GGMLType, []uint64, []byte, bool) {
		return gguf.TypeIQ4_NL, ti.Dims, make([]byte, ti.NumElements()/32*18), true
	}
	cases := []struct {
		name string
		data []byte
		want string
	}{
		{"shape.gguf", patchDims(t, data, "blk.3.attn_q.weight", 63), "tensor blk.3.attn_q.weight: shape [64 63], want [64 64]"},
		{"truncated.gguf", data[:len(data)-100], `tensor "blk.4.ffn_norm.weight": data`},
		{"junk.gguf", []byte("llama2.c? no."), "bad magic"},
		{"arch.gguf", rebuildGGUF(t, data, setKV("general.architecture", "gpt2")), `general.architecture "gpt2" is not supported`},
		{"noblocks.gguf", rebuildGGUF(t, data, setKV("llama.block_count", nil)), `metadata key "llama.block_count": key not found`},
		{"blockstype.gguf", rebuildGGUF(t, data, setKV("llama.block_count", "five")), `"llama.block_count": has type string, want an integer`},
		{"blocks.gguf", rebuildGGUF(t, data, setKV("llama.block_count", uint32(1<<30))), "llama.block_count 1073741824 needs 9663676416 block tensors, the file has 48"},
		{"zeroheads.gguf", rebuildGGUF(t, data, setKV("llama.attention.head_count", uint32(0))), "llama.attention.head_count is 0"},
		{"kvheads.gguf", rebuildGGUF(t, data, setKV("llama.attention.head_count_kv", uint32(3))), "not a multiple of llama.attention.head_count_kv 3"},
		{"ropedim.gguf", rebuildGGUF(t, data, setKV("llama.rope.dimension_count", uint32(4))), "llama.rope.dimension_count 4 differs from the head dim 8"},
		{"vocab.gguf", rebuildGGUF(t, data, ggufEdit{extra: func(b *gguf.Builder) error { return b.AddKV("llama.vocab_size", uint32(500)) }}), "llama.vocab_size 500 differs from the 512 rows"},
		{"scaling.gguf", rebuildGGUF(t, data, ggufEdit{extra: func(b *gguf.Builder) error { return b.AddKV("llama.rope.scaling.type", "yarn") }}), `llama.rope.scaling.type "yarn" is not supported`},
		{"linearnofactor.gguf", rebuildGGUF(t, data, ggufEdit{extra: func(b *gguf.Builder) error { return b.AddKV("llama.rope.scaling.type", "linear") }}), `metadata key "llama.rope.scaling.factor": key not found`},
		{"ropefreqs.gguf", rebuildGGUF(t, data, ggufEdit{extra: func(b *gguf.Builder) error {
			return b.AddFloat32("rope_freqs.weight", []int{4}, []float32{1, 0, 1, 1})
		}}), "tensor rope_freqs.weight: factor 1 is 0"},
		{"ropefreqsshape.gguf", rebuildGGUF(t, data, ggufEdit{extra: func(b *gguf.Builder) error {
			return b.AddFloat32("rope_freqs.weight", []int{3}, []float32{1, 1, 1})
		}}), "tensor rope_freqs.weight: shape [3], want [4]"},
		{"qwen3nonorm.gguf", rebuildGGUF(t, data, ggufEdit{kv: func(key string, v gguf.Value) (any, bool) {
			if key == "general.architecture" {
				return "qwen3", true
			}
			return v, true
		}}), `metadata key "qwen3.embedding_length": key not found`},
		{"moe.gguf", rebuildGGUF(t, data, ggufEdit{extra: func(b *gguf.Builder) error { return b.AddKV("llama.expert_count", uint32(8)) }}), "mixture-of-experts"},
		{"quantized.gguf", rebuildGGUF(t, data, editTensor("blk.1.ffn_up.weight", q4)), `tensor blk.1.ffn_up.weight has type IQ4_NL, which golora does not read`},
		{"missing.gguf", rebuildGGUF(t, data, editTensor("blk.2.ffn_up.weight", func(gguf.TensorInfo, []byte) (gguf.GGMLType, []uint64, []byte, bool) {
			return 0, nil, nil, false
		})), "tensor blk.2.ffn_up.weight is missing"},
		{"extra.gguf", rebuildGGUF(t, data, ggufEdit{extra: func(b *gguf.Builder) error {
			return b.AddFloat32("blk.0.attn_q.bias", []int{64}, make([]float32, 64))
		}}), "unexpected tensors blk.0.attn_q.bias"},
		{"tokmodel.gguf", rebuildGGUF(t, data, setKV("tokenizer.ggml.model", "bert")), `tokenizer.ggml.model "bert" is not supported`},
		{"gpt2nomerges.gguf", rebuildGGUF(t, data, setKV("tokenizer.ggml.model", "gpt2")), `metadata key "tokenizer.ggml.merges": key not found`},
		{"gemma.gguf", rebuildGGUF(t, data, setKV("general.architecture", "gemma2")), `general.architecture "gemma2" is not supported: it needs Gemma's`},
		{"tokens.gguf", rebuildGGUF(t, data, setKV("tokenizer.ggml.tokens", []string{"a"})), "tokenizer.ggml.tokens has 1 tokens, token_embd.weight 512 rows"},
		{"scores.gguf", rebuildGGUF(t, data, setKV("tokenizer.ggml.scores", []float32{0})), "512 tokens but 1 scores"},
		{"bos.gguf", rebuildGGUF(t, data, setKV("tokenizer.ggml.bos_token_id", uint32(512))), "tokenizer.ggml.bos_token_id 512 is outside"},
	}
	dir := t.TempDir()
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			path := filepath.Join(dir, c.name)
			require.NoError(t, os.WriteFile(path, c.data, 0o644))
			w, tok, err := loadGGUF(path)
			assert.True(t, w == nil && tok == nil, "no results with an error")
			require.Error(t, err)
			assert.Contains(t, err.Error(), path)
			assert.Contains(t, err.Error(), c.want)
		})
	}
}

// TestLoadGGUFWeightsOnlySkipsTokenizer: with LoadOptions.WeightsOnly a
// GGUF's tokenizer is not built, as a Hugging Face directory's is not read,
// so a tokenizer golora refuses does not stop a weights-only load.
func TestLoadGGUFWeightsOnlySkipsTokenizer(t *testing.T) {
	data, err := os.ReadFile(stories260KGGUFPath)
	require.NoError(t, err)
	path := filepath.Join(t.TempDir(), "bert.gguf")
	require.NoError(t, os.WriteFile(path, rebuildGGUF(t, data, setKV("tokenizer.ggml.model", "bert")), 0o644))
	_, err = Load(context.Background(), path, LoadOptions{})
	require.ErrorContains(t, err, `tokenizer.ggml.model "bert" is not supported`)
	b, err := Load(context.Background(), path, LoadOptions{WeightsOnly: true})
	require.NoError(t, err)
	require.Nil(t, b.Tokenizer)
	want, _, err := loadGGUF(stories260KGGUFPath)
	require.NoError(t, err)
	require.Equal(t, want.Layers[2].MLPNorm, b.Weights.Layers[2].MLPNorm)
}

// FuzzParseGGUF checks that parseGGUF never panics and that the weights it
// accepts pass Validate.
func FuzzParseGGUF(f *testing.F) {
	data, err := os.ReadFile(stories260KGGUFPath)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(data)
	q8, err := os.ReadFile("../quant/ggml/testdata/stories260K.q8_0.llama.gguf")
	if err != nil {
		f.Fatal(err)
	}
	f.Add(q8)
	for _, seed := range writtenGGUFSeeds(f) {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		w, _, err := parseGGUF(data)
		if err != nil {
			return
		}
		if err := w.Validate(); err != nil {
			t.Fatalf("accepted weights fail Validate: %v", err)
		}
	})
}

// writtenGGUFSeeds returns GGUF files WriteGGUF writes of the reference
// checkpoints of testdata/arch, files of the kind llama.cpp ran to the
// logits of testdata/arch/*/llamacpp.json: phi3 in Q8_0 (fused tensors split
// in their block format, partial rotary), qwen2 in F32 with a byte-level BPE
// tokenizer and Qwen2.5's chat template, llama3 in F16 with rope_freqs.
func writtenGGUFSeeds(f *testing.F) [][]byte {
	f.Helper()
	qwenConfig, err := os.ReadFile("chat/testdata/qwen2.5/tokenizer_config.json")
	if err != nil {
		f.Fatal(err)
	}
	var cfg struct {
		ChatTemplate string `json:"chat_template"`
	}
	if err := json.Unmarshal(qwenConfig, &cfg); err != nil {
		f.Fatal(err)
	}
	var seeds [][]byte
	for _, s := range []struct {
		name string
		typ  ggml.Type
		chat string
	}{{"phi3", ggml.Q8_0, ""}, {"qwen2", GGUFF32, cfg.ChatTemplate}, {"llama3", GGUFF16, ""}} {
		b, err := Load(context.Background(), filepath.Join("testdata", "arch", s.name), LoadOptions{WeightsOnly: true})
		if err != nil {
			f.Fatal(err)
		}
		tokens := gpt2ByteChars()[:64]
		tokens[61], tokens[62], tokens[63] = "!\"", "#$", "<|im_end|>"
		types := make([]int32, 64)
		for i := range types {
			types[i] = 1
		}
		types[63] = 3
		if b.Tokenizer, err = tokenizer.NewByteLevelBPE(tokenizer.ByteLevelBPEConfig{
			Tokens: tokens, Types: types, Merges: []string{"! \"", "# $"}, Pre: "qwen2", BOS: -1, EOS: 63,
		}); err != nil {
			f.Fatal(err)
		}
		if s.chat != "" {
			b.Format, b.ggufChat = FormatGGUF, &ggufChat{texts: map[string]string{"default": s.chat}, eos: "<|im_end|>"}
		}
		path := filepath.Join(f.TempDir(), s.name+".gguf")
		if err := WriteGGUF(path, b, s.typ); err != nil {
			f.Fatal(err)
		}
		data, err := os.ReadFile(path)
		if err != nil {
			f.Fatal(err)
		}
		seeds = append(seeds, data)
	}
	return seeds
}

// gpt2ByteChars is GPT-2's bytes_to_unicode table, written out from its
// definition: printable bytes stand for themselves, the others for code
// points from 256 upwards in byte order.
func gpt2ByteChars() []string {
	var out []string
	next := 256
	for b := range 256 {
		if (b >= '!' && b <= '~') || (b >= 0xa1 && b <= 0xac) || b >= 0xae {
			out = append(out, string(rune(b)))
			continue
		}
		out = append(out, string(rune(next)))
		next++
	}
	return out
}

// TestLoadGGUFByteLevelBPE: a GGUF whose tokenizer.ggml.model is "gpt2"
// (Llama 3, Qwen) gets the byte-level BPE tokenizer. The vocabulary here is
// the 256 byte characters in byte order, one merge "h i" (id 256) and 255
// unused tokens, so the expected ids are the text's bytes, read off an ASCII
// table, with "hi" merged.
func TestLoadGGUFByteLevelBPE(t *testing.T) {
	data, err := os.ReadFile(stories260KGGUFPath)
	require.NoError(t, err)
	tokens := append(gpt2ByteChars(), "hi")
	types := make([]int32, 512)
	for i := range types {
		types[i] = 1
	}
	for i := len(tokens); i < 512; i++ {
		tokens = append(tokens, fmt.Sprintf("<unused%d>", i))
		types[i] = 5
	}
	edit := ggufEdit{
		kv: func(k string, v gguf.Value) (any, bool) {
			switch k {
			case "tokenizer.ggml.model":
				return "gpt2", true
			case "tokenizer.ggml.tokens":
				return tokens, true
			case "tokenizer.ggml.token_type":
				return types, true
			case "tokenizer.ggml.scores", "tokenizer.ggml.bos_token_id", "tokenizer.ggml.eos_token_id":
				return nil, false
			}
			return v, true
		},
		extra: func(b *gguf.Builder) error {
			if err := b.AddKV("tokenizer.ggml.merges", []string{"h i"}); err != nil {
				return err
			}
			return b.AddKV("tokenizer.ggml.pre", "gpt-2")
		},
	}
	path := filepath.Join(t.TempDir(), "gpt2.gguf")
	require.NoError(t, os.WriteFile(path, rebuildGGUF(t, data, edit), 0o644))
	_, tok, err := loadGGUF(path)
	require.NoError(t, err)
	assert.Equal(t, []int{256, 32, 116, 104, 101, 114, 101}, tok.Encode("hi there"))
	assert.Equal(t, -1, tok.BOS(), "no tokenizer.ggml.add_bos_token: no BOS")
}
