package main

import (
	"bytes"
	"context"
	"math"
	"math/rand/v2"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/golora/golora/lora"
	"github.com/golora/golora/model"
	"github.com/golora/golora/model/infer"
	"github.com/golora/golora/nf4"
)

// prefillLogits runs the prompt (BOS first) through w, with delta if not
// nil, and returns a copy of the logits that predict the next token.
func prefillLogits(t *testing.T, w *model.Weights, delta infer.Adapter, tokens []int) []float32 {
	t.Helper()
	g, err := infer.NewGenerator(w, infer.GeneratorOptions{Adapter: delta})
	require.NoError(t, err)
	logits, err := g.Prefill(tokens)
	require.NoError(t, err)
	return slices.Clone(logits)
}

func maxAbsDiff(a, b []float32) float64 {
	var d float64
	for i := range a {
		d = max(d, math.Abs(float64(a[i])-float64(b[i])))
	}
	return d
}

func TestMergeEmbedded(t *testing.T) {
	dir := t.TempDir()
	base, err := model.Default()
	require.NoError(t, err)
	cfg := lora.DefaultConfig()
	cfg.R, cfg.Alpha = 4, 8
	cfg.TargetModules = lora.ModuleRegex(lora.AllLinear)
	a, err := lora.New(base.Weights, cfg, 7)
	require.NoError(t, err)
	// PEFT initializes B to zero, which would make the merge a no-op.
	rng := rand.New(rand.NewPCG(3, 4))
	for _, name := range a.Modules() {
		p, _ := a.Pair(name)
		for i := range p.B {
			p.B[i] = float32(rng.NormFloat64() * 0.05)
		}
	}
	adapterDir := filepath.Join(dir, "adapter")
	require.NoError(t, lora.Save(adapterDir, a))

	out := filepath.Join(dir, "merged")
	code, stdout, errOut := golora(t, "merge", "--adapter", adapterDir, "--out", out)
	require.Equal(t, 0, code, errOut)
	require.Contains(t, stdout, "merged adapter "+adapterDir+" (35 modules")
	require.Contains(t, stdout, "model.safetensors")
	require.Contains(t, stdout, "tokenizer.bin")

	merged, err := model.Load(context.Background(), out, model.LoadOptions{})
	require.NoError(t, err)
	require.Equal(t, "hf", merged.Format)
	require.Equal(t, base.Tokenizer.Encode("Once upon a time"), merged.Tokenizer.Encode("Once upon a time"))
	for _, lin := range merged.Weights.Linears() {
		require.Nil(t, lin.Quantized, lin.Name)
	}

	tokens := append([]int{base.Tokenizer.BOS()}, base.Tokenizer.Encode("Once upon a time there was a big dog who liked to run")...)
	want := prefillLogits(t, base.Weights, a, tokens)
	got := prefillLogits(t, merged.Weights, nil, tokens)
	plain := prefillLogits(t, base.Weights, nil, tokens)
	// The merged model computes x·(W + s·B·A)ᵀ with the sum rounded to
	// float32 once per weight; the adapter path computes x·Wᵀ + s·(x·Aᵀ)·Bᵀ.
	// Both are float32 through 5 layers, so they agree to float32 rounding
	// of logits of magnitude ~10 (measured: about 1e-5); 1e-4 leaves room
	// while the adapter itself moves the logits by orders of magnitude more.
	const tol = 1e-4
	diff, effect := maxAbsDiff(got, want), maxAbsDiff(plain, want)
	t.Logf("merged vs base+adapter: max |Δlogit| %.3g; base vs base+adapter: %.3g", diff, effect)
	require.LessOrEqual(t, diff, tol)
	require.Greater(t, effect, 100*tol, "the adapter must change the logits for this test to mean anything")

	// A base stored in NF4 is merged into its dequantized weights and
	// written dense: the result matches the NF4 base plus the adapter.
	nf4Dir := filepath.Join(dir, "nf4")
	code, _, errOut = golora(t, "quantize", "--out", nf4Dir, "--compare=false")
	require.Equal(t, 0, code, errOut)
	out = filepath.Join(dir, "merged-from-nf4")
	code, _, errOut = golora(t, "merge", "--model", nf4Dir, "--adapter", adapterDir, "--out", out)
	require.Equal(t, 0, code, errOut)
	require.Contains(t, errOut, "the base is quantized")
	nf4Base, err := model.Load(context.Background(), nf4Dir, model.LoadOptions{})
	require.NoError(t, err)
	merged, err = model.Load(context.Background(), out, model.LoadOptions{})
	require.NoError(t, err)
	require.Zero(t, quantizedLinears(merged.Weights))
	diff = maxAbsDiff(prefillLogits(t, merged.Weights, nil, tokens), prefillLogits(t, nf4Base.Weights, a, tokens))
	require.LessOrEqual(t, diff, tol)

	// bf16 output: written and loadable.
	code, _, errOut = golora(t, "merge", "--adapter", adapterDir, "--out", filepath.Join(dir, "bf16"), "--dtype", "bf16")
	require.Equal(t, 0, code, errOut)
	_, err = model.Load(context.Background(), filepath.Join(dir, "bf16"), model.LoadOptions{})
	require.NoError(t, err)
}

func TestMergeErrors(t *testing.T) {
	code, _, errOut := golora(t, "merge", "--out", t.TempDir())
	require.Equal(t, 2, code)
	require.Contains(t, errOut, "--adapter and --out are required")
	code, _, errOut = golora(t, "merge", "--adapter", "no/such/adapter", "--out", t.TempDir())
	require.Equal(t, 1, code)
	require.Contains(t, errOut, "no/such/adapter")
	code, _, errOut = golora(t, "merge", "--adapter", "x", "--out", t.TempDir(), "--dtype", "f8")
	require.Equal(t, 1, code)
	require.Contains(t, errOut, `--dtype "f8": want f32, bf16 or f16`)
	code, _, _ = golora(t, "merge", "--quantize", "nf4")
	require.Equal(t, 2, code, "merge has no --quantize flag")
}

func TestQuantizeEmbedded(t *testing.T) {
	out := filepath.Join(t.TempDir(), "nf4")
	code, stdout, errOut := golora(t, "quantize", "--out", out)
	require.Equal(t, 0, code, errOut)

	base, err := model.Default()
	require.NoError(t, err)
	ck, err := model.Load(context.Background(), out, model.LoadOptions{})
	require.NoError(t, err)
	var sumErr2, n float64
	for i, lin := range ck.Weights.Linears() {
		dense := base.Weights.Linears()[i]
		m, ok := lin.Quantized.(*nf4.Matrix)
		require.True(t, ok, "%s is %T, want an NF4 matrix", lin.Name, lin.Quantized)
		require.Nil(t, lin.Dense)
		want, err := nf4.Quantize(dense.Dense, dense.Out, dense.In, nf4.Options{})
		require.NoError(t, err)
		gp, wp := m.Parts(), want.Parts()
		require.Equal(t, wp.BlockSize, gp.BlockSize)
		require.True(t, bytes.Equal(wp.Packed, gp.Packed), lin.Name)
		require.True(t, bytes.Equal(wp.QuantAbsmax, gp.QuantAbsmax), lin.Name)
		require.Equal(t, wp.NestedAbsmax, gp.NestedAbsmax, lin.Name)
		require.Equal(t, wp.Offset, gp.Offset, lin.Name)

		deq := make([]float32, lin.Out*lin.In)
		require.NoError(t, m.Dequantize(deq))
		for j, v := range dense.Dense {
			d := float64(v) - float64(deq[j])
			sumErr2 += d * d
		}
		n += float64(len(deq))
	}
	// The report's whole-model MSE, recomputed here from the written
	// matrices and the float32 originals.
	match := regexp.MustCompile(`(?m)^all 35 linears\s+226560 params\s+(\S+)\s+(\S+)`).FindStringSubmatch(stdout)
	require.NotNil(t, match, stdout)
	bits, err := strconv.ParseFloat(match[1], 64)
	require.NoError(t, err)
	require.InDelta(t, 4.135, bits, 0.001, "bits/param with double quantization at block 64")
	mse, err := strconv.ParseFloat(match[2], 64)
	require.NoError(t, err)
	require.InEpsilon(t, sumErr2/n, mse, 1e-3)
	for _, format := range []string{"nf4", "fp4", "int4", "int8"} {
		require.Regexp(t, "(?m)^"+format+`\s+\d`, stdout)
	}

	// The written model generates what the in-memory NF4 model does.
	code, fromDisk, errOut := golora(t, "generate", "--model", out, "--max-tokens", "30")
	require.Equal(t, 0, code, errOut)
	code, inMemory, errOut := golora(t, "generate", "--quantize", "nf4", "--max-tokens", "30")
	require.Equal(t, 0, code, errOut)
	require.Equal(t, inMemory, fromDisk)

	// A quantized checkpoint is not quantized again.
	code, _, errOut = golora(t, "quantize", "--model", out, "--out", filepath.Join(t.TempDir(), "again"))
	require.Equal(t, 1, code)
	require.Contains(t, errOut, "model.layers.0.self_attn.q_proj is already nf4-quantized")
}

func TestQuantizeOptions(t *testing.T) {
	out := filepath.Join(t.TempDir(), "nf4")
	code, stdout, errOut := golora(t, "quantize", "--out", out, "--block-size", "128", "--no-double-quant", "--compare=false", "--dtype", "bf16")
	require.Equal(t, 0, code, errOut)
	require.NotContains(t, stdout, "fp4")
	ck, err := model.Load(context.Background(), out, model.LoadOptions{})
	require.NoError(t, err)
	for _, lin := range ck.Weights.Linears() {
		m := lin.Quantized.(*nf4.Matrix)
		require.Equal(t, 128, m.BlockSize(), lin.Name)
		require.False(t, m.DoubleQuant(), lin.Name)
	}

	code, _, errOut = golora(t, "quantize", "--out", out, "--block-size", "48")
	require.Equal(t, 1, code)
	require.Contains(t, errOut, "--block-size")
	code, _, errOut = golora(t, "quantize")
	require.Equal(t, 2, code)
	require.Contains(t, errOut, "--out is required")
}
