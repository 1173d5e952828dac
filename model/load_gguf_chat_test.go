package model_test

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/golora/golora/internal/gguf"
	"github.com/golora/golora/model"
	"github.com/golora/golora/model/chat"
	"github.com/golora/golora/model/tokenizer"
	"github.com/golora/golora/quant/ggml"
)

// chatModel names the tokenizer.json and tokenizer_config.json (the chat
// template) of a model of model/chat's golden data.
type chatModel struct {
	name, tokenizerJSON, config string
}

var chatModels = []chatModel{
	{"llama-3.1", "tokenizer/testdata/llama3/tokenizer.json.gz", "chat/testdata/llama-3.1/tokenizer_config.json"},
	{"qwen2.5", "tokenizer/testdata/qwen2.5/tokenizer.json.gz", "chat/testdata/qwen2.5/tokenizer_config.json"},
}

func readMaybeGzip(t testing.TB, path string) []byte {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasSuffix(path, ".gz") {
		return data
	}
	zr, err := gzip.NewReader(bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	if data, err = io.ReadAll(zr); err != nil {
		t.Fatal(err)
	}
	return data
}

// chatGGUF writes a GGUF file of architecture llama, with random weights of
// hidden size 8 and the vocabulary of m's tokenizer, whose tokenizer.ggml.*
// metadata is m's tokenizer.json as llama.cpp's converter writes it and
// whose tokenizer.chat_template is the chat_template string of m's
// tokenizer_config.json, as the converter copies it.
func chatGGUF(t *testing.T, m chatModel) string {
	t.Helper()
	tokJSON := readMaybeGzip(t, m.tokenizerJSON)
	cfgJSON := readMaybeGzip(t, m.config)
	tok, err := tokenizer.ParseHFWithConfig(tokJSON, cfgJSON)
	if err != nil {
		t.Fatal(err)
	}
	c, err := tok.(*tokenizer.BPE).ByteLevelBPEConfig(tok.VocabSize())
	if err != nil {
		t.Fatal(err)
	}
	var cfg struct {
		ChatTemplate string `json:"chat_template"`
	}
	if err := json.Unmarshal(cfgJSON, &cfg); err != nil {
		t.Fatal(err)
	}
	var b gguf.Builder
	kv := func(key string, v any) {
		if err := b.AddKV(key, v); err != nil {
			t.Fatal(err)
		}
	}
	const dim, hidden = 8, 16
	vocab := len(c.Tokens)
	for _, e := range []struct {
		key string
		v   any
	}{
		{"general.architecture", "llama"}, {"llama.embedding_length", uint32(dim)}, {"llama.feed_forward_length", uint32(hidden)},
		{"llama.block_count", uint32(1)}, {"llama.attention.head_count", uint32(2)}, {"llama.context_length", uint32(256)},
		{"llama.attention.layer_norm_rms_epsilon", float32(1e-5)},
		{"tokenizer.ggml.model", "gpt2"}, {"tokenizer.ggml.pre", c.Pre}, {"tokenizer.ggml.tokens", c.Tokens},
		{"tokenizer.ggml.token_type", c.Types}, {"tokenizer.ggml.merges", c.Merges},
		{"tokenizer.ggml.add_bos_token", c.AddBOS}, {"tokenizer.chat_template", cfg.ChatTemplate},
	} {
		kv(e.key, e.v)
	}
	if c.BOS >= 0 {
		kv("tokenizer.ggml.bos_token_id", uint32(c.BOS))
	}
	kv("tokenizer.ggml.eos_token_id", uint32(c.EOS))
	rng := rand.New(rand.NewPCG(1, 2))
	add := func(name string, shape ...int) {
		n := 1
		for _, s := range shape {
			n *= s
		}
		v := make([]float32, n)
		for i := range v {
			v[i] = float32(rng.NormFloat64()) * 0.1
		}
		if err := b.AddFloat32(name, shape, v); err != nil {
			t.Fatal(err)
		}
	}
	add("token_embd.weight", vocab, dim)
	add("output_norm.weight", dim)
	for _, s := range []struct {
		name  string
		shape []int
	}{
		{"attn_norm", []int{dim}}, {"ffn_norm", []int{dim}}, {"attn_q", []int{dim, dim}}, {"attn_k", []int{dim, dim}},
		{"attn_v", []int{dim, dim}}, {"attn_output", []int{dim, dim}}, {"ffn_gate", []int{hidden, dim}},
		{"ffn_up", []int{hidden, dim}}, {"ffn_down", []int{dim, hidden}},
	} {
		add("blk.0."+s.name+".weight", s.shape...)
	}
	path := filepath.Join(t.TempDir(), m.name+".gguf")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.WriteTo(f); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	return path
}

// chatGolden is model/chat's golden data: conversations, and for each model
// the text, ids and assistant mask that Python Jinja2 and Hugging Face
// tokenizers produced (model/chat/testdata/README.md).
type chatGolden struct {
	vars  map[string]any
	convs []struct {
		Name             string         `json:"name"`
		GenerationPrompt bool           `json:"generation_prompt"`
		Messages         []chat.Message `json:"messages"`
	}
	want map[string]struct {
		Text      string `json:"text"`
		IDs       []int  `json:"ids"`
		Assistant []int  `json:"assistant"`
	}
}

func readChatGolden(t *testing.T) chatGolden {
	t.Helper()
	var cases struct {
		Extra         map[string]any `json:"extra"`
		Conversations json.RawMessage
	}
	var g chatGolden
	if err := json.Unmarshal(readMaybeGzip(t, "chat/testdata/cases.json"), &cases); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(cases.Conversations, &g.convs); err != nil {
		t.Fatal(err)
	}
	g.vars = cases.Extra
	var golden struct {
		Cases []struct {
			Model, Case, Text string
			IDs               []int `json:"ids"`
			Assistant         []int `json:"assistant"`
		} `json:"cases"`
	}
	if err := json.Unmarshal(readMaybeGzip(t, "chat/testdata/golden_chat.json"), &golden); err != nil {
		t.Fatal(err)
	}
	g.want = map[string]struct {
		Text      string `json:"text"`
		IDs       []int  `json:"ids"`
		Assistant []int  `json:"assistant"`
	}{}
	for _, c := range golden.Cases {
		g.want[c.Model+"/"+c.Case] = struct {
			Text      string `json:"text"`
			IDs       []int  `json:"ids"`
			Assistant []int  `json:"assistant"`
		}{c.Text, c.IDs, c.Assistant}
	}
	return g
}

// checkChatGolden renders and encodes every golden conversation of model
// name with tmpl and tok and compares text, ids and assistant mask.
func checkChatGolden(t *testing.T, g chatGolden, name string, tmpl *chat.Template, tok tokenizer.Tokenizer) {
	t.Helper()
	enc := chat.Encoder{Tokenizer: tok, Template: tmpl}
	for _, c := range g.convs {
		want, ok := g.want[name+"/"+c.Name]
		if !ok {
			t.Fatalf("no golden for %s/%s", name, c.Name)
		}
		enc.Options = chat.RenderOptions{AddGenerationPrompt: c.GenerationPrompt, Vars: g.vars}
		text, err := tmpl.Render(c.Messages, enc.Options)
		if err != nil {
			t.Fatal(err)
		}
		if text != want.Text {
			t.Errorf("%s: Render =\n%q\nwant\n%q", c.Name, text, want.Text)
		}
		got, err := enc.EncodeChat(c.Messages)
		if err != nil {
			t.Fatal(err)
		}
		mask := make([]int, len(got.Assistant))
		for i, a := range got.Assistant {
			if a {
				mask[i] = 1
			}
		}
		if !slices.Equal(got.IDs, want.IDs) || !slices.Equal(mask, want.Assistant) {
			t.Errorf("%s: ids %v mask %v\nwant ids %v mask %v", c.Name, got.IDs, mask, want.IDs, want.Assistant)
		}
	}
}

// TestGGUFChatTemplate: a GGUF file carrying Llama 3.1's or Qwen2.5's real
// chat template (tokenizer.chat_template) and its tokenizer loads with a
// template that renders and encodes model/chat's golden conversations as
// Python Jinja2 and Hugging Face tokenizers do — bos_token and eos_token
// come from tokenizer.ggml.bos/eos_token_id — so chat data and
// /v1/chat/completions work with a GGUF base as with the Hugging Face
// directory.
func TestGGUFChatTemplate(t *testing.T) {
	if testing.Short() {
		t.Skip("parses two 128k-token vocabularies")
	}
	g := readChatGolden(t)
	for _, m := range chatModels {
		t.Run(m.name, func(t *testing.T) {
			b, err := model.Load(context.Background(), chatGGUF(t, m), model.LoadOptions{})
			if err != nil {
				t.Fatal(err)
			}
			tmpl, err := b.ChatTemplate()
			if err != nil {
				t.Fatal(err)
			}
			checkChatGolden(t, g, m.name, tmpl, b.Tokenizer)
		})
	}
}

// TestGGUFNoChatTemplate: a GGUF file without tokenizer.chat_template has
// no template (ErrNoChatTemplate, naming the file and the key), and a
// template that does not compile is refused at load time, naming the key.
func TestGGUFNoChatTemplate(t *testing.T) {
	path := filepath.Join("..", "quant", "ggml", "testdata", "stories260K.q8_0.llama.gguf")
	b, err := model.Load(context.Background(), path, model.LoadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	_, err = b.ChatTemplate()
	if !errors.Is(err, model.ErrNoChatTemplate) || !strings.Contains(err.Error(), path) || !strings.Contains(err.Error(), "tokenizer.chat_template") {
		t.Errorf("err %v", err)
	}

	bad := rewriteGGUF(t, path, func(key string) bool { return true }, func(gb *gguf.Builder) error {
		return gb.AddKV("tokenizer.chat_template", "{% for m in messages %}{{ m.content }")
	})
	_, err = model.Load(context.Background(), bad, model.LoadOptions{})
	if err == nil || !strings.Contains(err.Error(), bad) || !strings.Contains(err.Error(), "tokenizer.chat_template") {
		t.Errorf("a template that does not compile: err %v", err)
	}
}

// rewriteGGUF copies the GGUF file src to a new file, keeping the metadata
// keys for which keep is true and every tensor, then calling add, and
// returns the new file's path.
func rewriteGGUF(t *testing.T, src string, keep func(key string) bool, add func(*gguf.Builder) error) string {
	t.Helper()
	f, err := gguf.Open(src)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var gb gguf.Builder
	for _, kv := range f.KVs() {
		if keep(kv.Key) {
			if err := gb.AddKV(kv.Key, kv.Value); err != nil {
				t.Fatal(err)
			}
		}
	}
	for _, ti := range f.Tensors() {
		data, err := f.TensorBytes(ti.Name)
		if err != nil {
			t.Fatal(err)
		}
		if err := gb.AddTensor(ti.Name, ti.Type, ti.Dims, data); err != nil {
			t.Fatal(err)
		}
	}
	if add != nil {
		if err := add(&gb); err != nil {
			t.Fatal(err)
		}
	}
	dst := filepath.Join(t.TempDir(), filepath.Base(src))
	out, err := os.Create(dst)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := gb.WriteTo(out); err != nil {
		t.Fatal(err)
	}
	if err := out.Close(); err != nil {
		t.Fatal(err)
	}
	return dst
}

// hfToGGUF writes w with tokJSON and cfgJSON as a Hugging Face directory,
// loads it, writes that model with WriteGGUF (Q8_0) as name.gguf and loads
// the file: the directory and the two models. With GOLORA_LLAMACPP_EXPORT set
// to a directory, the file is written there.
func hfToGGUF(t *testing.T, w *model.Weights, tokJSON, cfgJSON []byte, name string) (dir string, hf, b *model.Base) {
	t.Helper()
	dir = t.TempDir()
	if err := model.WriteHF(dir, w, model.F32); err != nil {
		t.Fatal(err)
	}
	for file, data := range map[string][]byte{"tokenizer.json": tokJSON, "tokenizer_config.json": cfgJSON} {
		if err := os.WriteFile(filepath.Join(dir, file), data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	hf, err := model.Load(context.Background(), dir, model.LoadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), name+".gguf")
	if export := os.Getenv("GOLORA_LLAMACPP_EXPORT"); export != "" {
		path = filepath.Join(export, name+".gguf") // for llama.cpp to load
	}
	if err := model.WriteGGUF(path, hf, ggml.Q8_0); err != nil {
		t.Fatal(err)
	}
	b, err = model.Load(context.Background(), path, model.LoadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return dir, hf, b
}

// TestWriteGGUFFromHFChat: a Hugging Face model with Llama 3.1's or
// Qwen2.5's real tokenizer.json and tokenizer_config.json, written with
// WriteGGUF, loads back with a tokenizer and chat template that render and
// encode model/chat's golden conversations as Python Jinja2 and Hugging Face
// tokenizers do, and with the same logits (Q8_0 linears, read back in their
// format). Qwen's embedding has more rows than its tokenizer has tokens, as
// Qwen2.5's does; the extra ids become unused tokens. With
// GOLORA_LLAMACPP_EXPORT set to a directory, the files are written there.
func TestWriteGGUFFromHFChat(t *testing.T) {
	if testing.Short() {
		t.Skip("parses 128k-token vocabularies four times")
	}
	g := readChatGolden(t)
	for _, m := range chatModels {
		t.Run(m.name, func(t *testing.T) {
			tokJSON := readMaybeGzip(t, m.tokenizerJSON)
			cfgJSON := readMaybeGzip(t, m.config)
			tok, err := tokenizer.ParseHFWithConfig(tokJSON, cfgJSON)
			if err != nil {
				t.Fatal(err)
			}
			cfg := model.Config{Dim: 32, HiddenDim: 64, Layers: 1, Heads: 2, KVHeads: 1, HeadDim: 16, VocabSize: tok.VocabSize(),
				MaxSeqLen: 256, NormEps: 1e-5, RopeTheta: 500000, TiedOutput: true}
			if m.name == "qwen2.5" {
				cfg.Arch, cfg.QKVBias, cfg.VocabSize = "qwen2", true, tok.VocabSize()+7
			}
			dir, hf, b := hfToGGUF(t, model.RandomWeights(cfg, 3), tokJSON, cfgJSON, m.name)
			if b.Tokenizer.VocabSize() != cfg.VocabSize || b.Tokenizer.BOS() != hf.Tokenizer.BOS() || b.Tokenizer.EOS() != hf.Tokenizer.EOS() {
				t.Errorf("tokenizer read back: %d tokens, BOS %d, EOS %d; wrote %d, %d, %d", b.Tokenizer.VocabSize(), b.Tokenizer.BOS(), b.Tokenizer.EOS(),
					cfg.VocabSize, hf.Tokenizer.BOS(), hf.Tokenizer.EOS())
			}
			tmpl, err := b.ChatTemplate()
			if err != nil {
				t.Fatal(err)
			}
			checkChatGolden(t, g, m.name, tmpl, b.Tokenizer)

			// The same model: the GGUF file's Q8_0 embedding and linears
			// give the logits of the Hugging Face model quantized the same
			// way.
			q, err := model.Load(context.Background(), dir, model.LoadOptions{WeightsOnly: true, Quantizer: ggml.QuantizeQ8_0})
			if err != nil {
				t.Fatal(err)
			}
			emb, err := ggml.Quantize(ggml.Q8_0, q.Weights.Embedding, cfg.VocabSize, cfg.Dim)
			if err != nil {
				t.Fatal(err)
			}
			if err := emb.DequantizeRows(q.Weights.Embedding, 0, cfg.VocabSize); err != nil {
				t.Fatal(err)
			}
			// The embedding loads as the file stores it, in Q8_0 blocks.
			if m, ok := b.Weights.EmbeddingMatrix.(*ggml.Matrix); !ok || m.Type() != ggml.Q8_0 {
				t.Errorf("the GGUF file's embedding loads as %T, want a Q8_0 ggml matrix", b.Weights.EmbeddingMatrix)
			}
			got, err := b.Weights.EmbeddingFloat32()
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(q.Weights.Embedding, got) {
				t.Error("the GGUF file's embedding is not the Q8_0 embedding")
			}
			tokens := b.Tokenizer.Encode("Hello, world! 12345")
			if d := maxDiff(stepLogits(t, b.Weights, tokens), stepLogits(t, q.Weights, tokens)); d > 1e-5 {
				t.Errorf("logits of the GGUF file differ from the Q8_0-quantized model's by %g", d)
			}
		})
	}
}

// TestWriteGGUFFromHFLlama2Tokenizer: a Hugging Face model with TinyLlama's
// tokenizer.json (Llama 2's byte-fallback vocabulary) and chat template is
// written as a GGUF "llama" (SentencePiece) tokenizer that encodes text as
// the tokenizer.json does, with the same BOS, EOS and rendered chat.
func TestWriteGGUFFromHFLlama2Tokenizer(t *testing.T) {
	src := filepath.Join("tokenizer", "testdata", "tinyllama")
	tokJSON := readMaybeGzip(t, filepath.Join(src, "tokenizer.json"))
	cfgJSON := readMaybeGzip(t, filepath.Join(src, "tokenizer_config.json"))
	cfg := model.Config{Dim: 32, HiddenDim: 64, Layers: 1, Heads: 2, KVHeads: 2, HeadDim: 16, VocabSize: 32000,
		MaxSeqLen: 256, NormEps: 1e-5, RopeTheta: 10000}
	_, hf, b := hfToGGUF(t, model.RandomWeights(cfg, 5), tokJSON, cfgJSON, "tinyllama")
	if _, ok := b.Tokenizer.(*tokenizer.SentencePiece); !ok {
		t.Fatalf("tokenizer read back is %T", b.Tokenizer)
	}
	if b.Tokenizer.BOS() != hf.Tokenizer.BOS() || b.Tokenizer.EOS() != hf.Tokenizer.EOS() {
		t.Errorf("BOS %d EOS %d, wrote %d %d", b.Tokenizer.BOS(), b.Tokenizer.EOS(), hf.Tokenizer.BOS(), hf.Tokenizer.EOS())
	}
	for _, s := range []string{"Hello world", " leading space", "naïve café 日本語 🙂", "tabs\tand\nnewlines", "1234567 + 89"} {
		if got, want := b.Tokenizer.Encode(s), hf.Tokenizer.Encode(s); !slices.Equal(got, want) {
			t.Errorf("Encode(%q) = %v, tokenizer.json's %v", s, got, want)
		}
	}
	msgs := []chat.Message{{Role: "system", Content: "Be brief."}, {Role: "user", Content: "Hi"}}
	var texts []string
	for _, base := range []*model.Base{hf, b} {
		tmpl, err := base.ChatTemplate()
		if err != nil {
			t.Fatal(err)
		}
		text, err := tmpl.Render(msgs, chat.RenderOptions{AddGenerationPrompt: true})
		if err != nil {
			t.Fatal(err)
		}
		texts = append(texts, text)
	}
	if texts[0] != texts[1] || !strings.Contains(texts[1], "</s>") {
		t.Errorf("chat rendered from the GGUF file %q, from the directory %q", texts[1], texts[0])
	}
}
