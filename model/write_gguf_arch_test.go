package model_test

import (
	"bytes"
	"context"
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/golora/golora/internal/gguf"
	"github.com/golora/golora/model"
	"github.com/golora/golora/model/infer"
	"github.com/golora/golora/model/tokenizer"
	"github.com/golora/golora/nf4"
	"github.com/golora/golora/quant/ggml"
)

// llamaCppFamilies are the per-architecture checkpoints of testdata/arch
// that WriteGGUF writes and llama.cpp runs as golora does, with the
// pre-tokenizer of their tiny tokenizer. (mistral_window is left out:
// llama.cpp's llama architecture ignores the sliding window; phi4_longrope
// has no llama.cpp logits yet, see TestWriteGGUFLongRope for its round trip.)
var llamaCppFamilies = []struct{ name, pre string }{
	{"llama3", "llama-bpe"}, {"llama_linear", "llama-bpe"}, {"mistral", "llama-bpe"},
	{"qwen2", "qwen2"}, {"qwen3", "qwen2"}, {"phi3", "gpt-2"},
}

// tinyByteLevelBPE returns a 64-token byte-level BPE tokenizer for the
// 64-row checkpoints of testdata/arch: the letters, space ("Ġ") and newline
// ("Ċ") of GPT-2's byte alphabet, "Ġa"…"Ġz" by merges, a few more bytes,
// and <|begin_of_text|> (62, BOS) and <|eot_id|> (63, EOS) as control
// tokens.
func tinyByteLevelBPE(t testing.TB, pre string) *tokenizer.BPE {
	t.Helper()
	var c tokenizer.ByteLevelBPEConfig
	for r := 'a'; r <= 'z'; r++ {
		c.Tokens = append(c.Tokens, string(r))
	}
	c.Tokens = append(c.Tokens, "Ġ", "Ċ")
	for r := 'a'; r <= 'z'; r++ {
		c.Tokens = append(c.Tokens, "Ġ"+string(r))
		c.Merges = append(c.Merges, "Ġ "+string(r))
	}
	c.Tokens = append(c.Tokens, ".", ",", "0", "1", "2", "3", "!", "?", "<|begin_of_text|>", "<|eot_id|>")
	c.Types = make([]int32, len(c.Tokens))
	for i := range c.Types {
		c.Types[i] = 1
	}
	c.Types[62], c.Types[63] = 3, 3
	c.Pre, c.BOS, c.EOS, c.AddBOS = pre, 62, 63, true
	tok, err := tokenizer.NewByteLevelBPE(c)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// archGolden is a checkpoint's golden.json (numpy reference logits) and
// llamacpp.json (llama.cpp's logits of the GGUF files WriteGGUF writes).
type archGolden struct {
	Tokens []int       `json:"tokens"`
	Logits [][]float64 `json:"logits"`
	// LlamaCpp maps a WriteGGUF type ("f32", "q8_0") to llama.cpp's logits.
	LlamaCpp map[string][][]float64
}

func readArchGolden(t *testing.T, name string) archGolden {
	t.Helper()
	var g archGolden
	dir := filepath.Join("testdata", "arch", name)
	data, err := os.ReadFile(filepath.Join(dir, "golden.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(data, &g); err != nil {
		t.Fatal(err)
	}
	if data, err = os.ReadFile(filepath.Join(dir, "llamacpp.json")); err == nil {
		if err := json.Unmarshal(data, &g.LlamaCpp); err != nil {
			t.Fatal(err)
		}
	} else if !os.IsNotExist(err) {
		t.Fatal(err)
	}
	return g
}

// archBase loads checkpoint name of testdata/arch with the tiny tokenizer.
func archBase(t *testing.T, name, pre string) *model.Base {
	t.Helper()
	b, err := model.Load(context.Background(), filepath.Join("testdata", "arch", name), model.LoadOptions{WeightsOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	b.Tokenizer = tinyByteLevelBPE(t, pre)
	return b
}

// stepLogits runs the generator over tokens and returns the logits of every
// position.
func stepLogits(t *testing.T, w *model.Weights, tokens []int) [][]float32 {
	t.Helper()
	g, err := infer.NewGenerator(w, infer.GeneratorOptions{})
	if err != nil {
		t.Fatal(err)
	}
	out := make([][]float32, len(tokens))
	for i, tok := range tokens {
		logits, err := g.Step(tok)
		if err != nil {
			t.Fatal(err)
		}
		out[i] = append([]float32(nil), logits...)
	}
	return out
}

func maxDiff[T, U float32 | float64](a [][]T, b [][]U) float64 {
	worst := 0.0
	for i := range a {
		for j := range a[i] {
			worst = math.Max(worst, math.Abs(float64(a[i][j])-float64(b[i][j])))
		}
	}
	return worst
}

// ggufTypes are the WriteGGUF types checked against llama.cpp, by the
// names llamacpp.json uses.
var ggufTypes = []struct {
	name string
	typ  ggml.Type
}{{"f32", model.GGUFF32}, {"q8_0", ggml.Q8_0}}

// TestWriteGGUFMatchesLlamaCpp writes each family's checkpoint as GGUF
// (F32 and Q8_0, with a byte-level BPE tokenizer) and checks:
//
//   - golora reads the file back to the model it wrote: the F32 file's
//     logits equal the checkpoint's within 1e-5 (Llama 3's rope scaling comes
//     back as rope_freqs divisors, which round differently);
//   - llama.cpp ran the same files (testdata/arch/README.md says how) to the
//     logits in llamacpp.json: golora's logits of the read-back files match
//     them within 1e-4 (F32) and 0.25 (Q8_0: llama.cpp also rounds the
//     activations to 8 bits, which moves these logits, of standard
//     deviation 1 to 1.8, by up to 0.15; a misplaced row or a wrong RoPE
//     layout moves them by about their standard deviation), and
//     llama.cpp's F32 logits match the numpy
//     reference within 1e-4, so the file means to llama.cpp what it means
//     to golora and transformers.
//
// With GOLORA_LLAMACPP_EXPORT set to a directory, the files are also written
// there, as <family>.<type>.gguf, for llama.cpp to run.
func TestWriteGGUFMatchesLlamaCpp(t *testing.T) {
	export := os.Getenv("GOLORA_LLAMACPP_EXPORT")
	for _, fam := range llamaCppFamilies {
		t.Run(fam.name, func(t *testing.T) {
			b := archBase(t, fam.name, fam.pre)
			g := readArchGolden(t, fam.name)
			want := stepLogits(t, b.Weights, g.Tokens)
			for _, ty := range ggufTypes {
				path := filepath.Join(t.TempDir(), fam.name+"."+ty.name+".gguf")
				if export != "" {
					path = filepath.Join(export, fam.name+"."+ty.name+".gguf")
				}
				if err := model.WriteGGUF(path, b, ty.typ); err != nil {
					t.Fatal(err)
				}
				back, err := model.Load(context.Background(), path, model.LoadOptions{})
				if err != nil {
					t.Fatal(err)
				}
				if back.Weights.Config.Arch != b.Weights.Config.Arch && !(fam.name == "mistral" && back.Weights.Config.Arch == "") {
					t.Errorf("%s: read back as arch %q, wrote %q", ty.name, back.Weights.Config.Arch, b.Weights.Config.Arch)
				}
				const text = "ab a, b<|eot_id|>\n"
				if got, wrote := back.Tokenizer.Encode(text), b.Tokenizer.Encode(text); !slices.Equal(got, wrote) || back.Tokenizer.BOS() != 62 || back.Tokenizer.EOS() != 63 {
					t.Errorf("%s: tokenizer read back encodes %v (BOS %d, EOS %d), wrote %v", ty.name, got, back.Tokenizer.BOS(), back.Tokenizer.EOS(), wrote)
				}
				got := stepLogits(t, back.Weights, g.Tokens)
				if ty.typ == model.GGUFF32 {
					// Written again from what was read, the file is the same.
					again := filepath.Join(t.TempDir(), "again.gguf")
					if err := model.WriteGGUF(again, back, ty.typ); err != nil {
						t.Fatal(err)
					}
					a, _ := os.ReadFile(path)
					c, _ := os.ReadFile(again)
					if !bytes.Equal(a, c) {
						t.Error("f32: the file read back and written again differs")
					}
					d := maxDiff(got, want)
					t.Logf("f32: max |golora read back − golora| %.2g", d)
					if d > 1e-5 {
						t.Errorf("f32 file read back: logits differ by %g", d)
					}
				}
				ref, ok := g.LlamaCpp[ty.name]
				if !ok && export != "" {
					continue // writing the files for llama.cpp, which has not run them yet
				}
				if !ok {
					t.Fatalf("testdata/arch/%s/llamacpp.json has no %s logits", fam.name, ty.name)
				}
				tol := map[string]float64{"f32": 1e-4, "q8_0": 0.25}[ty.name]
				d := maxDiff(got, ref)
				t.Logf("%s: max |golora − llama.cpp| %.2g (golora − numpy reference %.2g, llama.cpp − numpy reference %.2g)",
					ty.name, d, maxDiff(got, g.Logits), maxDiff(ref, g.Logits))
				if d > tol {
					t.Errorf("%s: golora's logits of the file differ from llama.cpp's by %g > %g", ty.name, d, tol)
				}
			}
			if g.LlamaCpp == nil {
				return
			}
			if d := maxDiff(g.LlamaCpp["f32"], g.Logits); d > 1e-4 {
				t.Errorf("llama.cpp's f32 logits differ from the numpy reference by %g", d)
			} else {
				t.Logf("max |llama.cpp f32 − numpy reference| %.2g", d)
			}
		})
	}
}

// TestWriteGGUFArchMetadata: the keys and tensors llama.cpp needs for each
// architecture are in the written file.
func TestWriteGGUFArchMetadata(t *testing.T) {
	for _, tc := range []struct {
		name, arch string
		keys       []string
		tensors    []string
		absent     []string
	}{
		{"llama3", "llama", []string{"tokenizer.ggml.pre", "tokenizer.ggml.merges", "llama.rope.dimension_count"}, []string{"rope_freqs.weight", "blk.1.attn_q.weight"}, []string{"blk.0.attn_qkv.weight"}},
		{"llama_linear", "llama", []string{"llama.rope.scaling.type", "llama.rope.scaling.factor"}, nil, []string{"rope_freqs.weight"}},
		{"mistral", "llama", []string{"llama.attention.sliding_window"}, nil, nil},
		{"qwen2", "qwen2", []string{"qwen2.attention.head_count_kv"}, []string{"blk.0.attn_q.bias", "blk.1.attn_v.bias"}, []string{"output.weight"}},
		{"qwen3", "qwen3", []string{"qwen3.attention.key_length", "qwen3.attention.value_length"}, []string{"blk.0.attn_q_norm.weight", "blk.1.attn_k_norm.weight"}, nil},
		{"phi3", "phi3", []string{"phi3.rope.dimension_count"}, []string{"blk.0.attn_qkv.weight", "blk.1.ffn_up.weight"}, []string{"blk.0.attn_q.weight", "blk.0.ffn_gate.weight"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "m.gguf")
			if err := model.WriteGGUF(path, archBase(t, tc.name, "gpt-2"), ggml.Q8_0); err != nil {
				t.Fatal(err)
			}
			f, err := gguf.Open(path)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			if arch, _ := f.String("general.architecture"); arch != tc.arch {
				t.Errorf("general.architecture %q, want %q", arch, tc.arch)
			}
			if m, _ := f.String("tokenizer.ggml.model"); m != "gpt2" {
				t.Errorf("tokenizer.ggml.model %q", m)
			}
			for _, k := range tc.keys {
				if _, ok := f.Lookup(k); !ok {
					t.Errorf("key %s missing", k)
				}
			}
			for _, n := range tc.tensors {
				if _, ok := f.Tensor(n); !ok {
					t.Errorf("tensor %s missing", n)
				}
			}
			for _, n := range tc.absent {
				if _, ok := f.Tensor(n); ok {
					t.Errorf("tensor %s present", n)
				}
			}
		})
	}
}

// TestWriteGGUFLongRope: Phi-4-mini's longrope round-trips through GGUF.
// Loaded from Hugging Face, written with WriteGGUF (F32), read back, written
// and read again, the model keeps its configuration, its short and long
// factors (those of config.json, read here independently) and the numpy
// reference's logits within 1e-4; the file holds them as llama.cpp's
// converter writes them (rope_factors_long and rope_factors_short,
// rope.scaling.original_context_length, rope.scaling.attn_factor). The same
// holds from the GGUF file archGGUF converts as llama.cpp does. Without its
// long factors a longrope model is refused and nothing is written.
func TestWriteGGUFLongRope(t *testing.T) {
	var hc struct {
		RopeScaling struct {
			Short []float64 `json:"short_factor"`
			Long  []float64 `json:"long_factor"`
		} `json:"rope_scaling"`
		OriginalMax int `json:"original_max_position_embeddings"`
	}
	data, err := os.ReadFile(filepath.Join("testdata", "arch", "phi4_longrope", "config.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(data, &hc); err != nil {
		t.Fatal(err)
	}
	float32s := func(v []float64) []float32 {
		out := make([]float32, len(v))
		for i, x := range v {
			out[i] = float32(x)
		}
		return out
	}
	short, long := float32s(hc.RopeScaling.Short), float32s(hc.RopeScaling.Long)
	if slices.Equal(short, long) {
		t.Fatal("the test checkpoint's short and long factors are equal: a swap would go unseen")
	}
	golden := readArchGolden(t, "phi4_longrope")
	tok := tinyByteLevelBPE(t, "gpt-2")

	check := func(what string, b *model.Base, want model.Config) {
		t.Helper()
		if !reflect.DeepEqual(b.Weights.Config, want) {
			t.Errorf("%s: config %+v, want %+v", what, b.Weights.Config, want)
		}
		if !slices.Equal(b.Weights.RopeFreqFactors, short) || !slices.Equal(b.Weights.RopeLongFactors, long) {
			t.Errorf("%s: factors are not config.json's short and long ones", what)
		}
		if d := maxDiff(stepLogits(t, b.Weights, golden.Tokens), golden.Logits); d > 1e-4 {
			t.Errorf("%s: logits differ from the reference by %g", what, d)
		}
	}
	roundTrip := func(b *model.Base, name string) *model.Base {
		t.Helper()
		b.Tokenizer = tok
		path := filepath.Join(t.TempDir(), name+".gguf")
		if err := model.WriteGGUF(path, b, model.GGUFF32); err != nil {
			t.Fatal(err)
		}
		back, err := model.Load(context.Background(), path, model.LoadOptions{})
		if err != nil {
			t.Fatal(err)
		}
		return back
	}

	hf := archBase(t, "phi4_longrope", "gpt-2")
	want := hf.Weights.Config
	if want.RopeScaling.OriginalMaxPos != hc.OriginalMax {
		t.Fatalf("original context %d, config.json says %d", want.RopeScaling.OriginalMaxPos, hc.OriginalMax)
	}
	check("Hugging Face", hf, want)
	once := roundTrip(hf, "once")
	check("written once", once, want)
	check("written twice", roundTrip(once, "twice"), want)

	f, err := gguf.Open(once.Path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for name, v := range map[string][]float32{"rope_factors_short.weight": short, "rope_factors_long.weight": long} {
		if got, err := f.TensorFloat32(name); err != nil || !slices.Equal(got, v) {
			t.Errorf("tensor %s: %v, %v; want config.json's factors", name, got, err)
		}
	}
	if n, err := f.Int("phi3.rope.scaling.original_context_length"); err != nil || int(n) != hc.OriginalMax {
		t.Errorf("phi3.rope.scaling.original_context_length = %d, %v", n, err)
	}
	if a, err := f.Float("phi3.rope.scaling.attn_factor"); err != nil || math.Abs(a-want.RopeScaling.AttentionFactor) > 1e-6 {
		t.Errorf("phi3.rope.scaling.attn_factor = %v, %v; want %v", a, err, want.RopeScaling.AttentionFactor)
	}

	converted, err := model.Load(context.Background(), archGGUF(t, "phi4_longrope", "phi3"), model.LoadOptions{WeightsOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	convertedConfig := converted.Weights.Config
	check("llama.cpp-style GGUF, written", roundTrip(converted, "converted"), convertedConfig)

	hf.Weights.RopeLongFactors = nil
	path := filepath.Join(t.TempDir(), "m.gguf")
	err = model.WriteGGUF(path, hf, ggml.Q8_0)
	if err == nil || !strings.Contains(err.Error(), "longrope") || !strings.Contains(err.Error(), path) {
		t.Errorf("no long factors: err %v", err)
	}
	if _, err := os.Stat(path); !os.IsNotExist(err) {
		t.Errorf("a file was left: %v", err)
	}
}

// TestGGUFPhi3QuantizeOnLoad: a Phi-3 GGUF file quantized to NF4 as it
// loads (fused tensors split, then each part quantized) gives the logits
// of the Hugging Face checkpoint quantized the same way as it loads; with
// Q8_0 tensors and Requantize, the parts are requantized to NF4 too.
func TestGGUFPhi3QuantizeOnLoad(t *testing.T) {
	q := nf4.Quantizer(nf4.Options{})
	hf, err := model.Load(context.Background(), filepath.Join("testdata", "arch", "phi3"), model.LoadOptions{WeightsOnly: true, Quantizer: q})
	if err != nil {
		t.Fatal(err)
	}
	g := readArchGolden(t, "phi3")
	want := stepLogits(t, hf.Weights, g.Tokens)
	b := archBase(t, "phi3", "gpt-2")
	for _, ty := range []ggml.Type{model.GGUFF32, ggml.Q8_0} {
		path := filepath.Join(t.TempDir(), "phi3.gguf")
		if err := model.WriteGGUF(path, b, ty); err != nil {
			t.Fatal(err)
		}
		back, err := model.Load(context.Background(), path, model.LoadOptions{Quantizer: q, Requantize: true})
		if err != nil {
			t.Fatal(err)
		}
		for _, lin := range back.Weights.Linears() {
			if _, ok := lin.Quantized.(*nf4.Matrix); !ok {
				t.Fatalf("%v: %s is %T", ty, lin.Name, lin.Quantized)
			}
		}
		if ty == model.GGUFF32 {
			if d := maxDiff(stepLogits(t, back.Weights, g.Tokens), want); d > 1e-5 {
				t.Errorf("NF4 from the GGUF file: logits differ from NF4 from the checkpoint by %g", d)
			}
		}
	}
}
