package model

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"runtime"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/golora/golora/nf4"
	"github.com/golora/golora/quant"
)

// fakeMatrix is a quant.Matrix of the given shape that stores nothing; it
// lets tests check bookkeeping without depending on a real format.
type fakeMatrix struct{ rows, cols int }

func (m fakeMatrix) Dims() (int, int) { return m.rows, m.cols }
func (m fakeMatrix) DequantizeRows(dst []float32, start, end int) error {
	return errors.New("fake")
}
func (m fakeMatrix) MulT(y, x []float32, n int) error { return errors.New("fake") }
func (m fakeMatrix) StorageBytes() int64              { return int64(m.rows * m.cols / 2) }
func (m fakeMatrix) BitsPerParam() float64            { return 4 }
func (m fakeMatrix) Format() string                   { return "fake" }

func fakeQuantize(w []float32, rows, cols int) (quant.Matrix, error) {
	return fakeMatrix{rows, cols}, nil
}

func nf4Quantize(w []float32, rows, cols int) (quant.Matrix, error) {
	return nf4.Quantize(w, rows, cols, nf4.Options{})
}

func TestLinears(t *testing.T) {
	ck, err := Default()
	require.NoError(t, err)
	lins := ck.Weights.Linears()
	require.Len(t, lins, 35)
	var names []string
	for _, lin := range lins[:7] {
		names = append(names, lin.Name)
	}
	assert.Equal(t, []string{
		"model.layers.0.self_attn.q_proj", "model.layers.0.self_attn.k_proj", "model.layers.0.self_attn.v_proj",
		"model.layers.0.self_attn.o_proj", "model.layers.0.mlp.gate_proj", "model.layers.0.mlp.up_proj",
		"model.layers.0.mlp.down_proj",
	}, names)
	assert.Equal(t, "model.layers.4.mlp.down_proj", lins[34].Name)
	assert.Same(t, ck.Weights.Layers[2].V, lins[16])
}

func TestQuantizeNF4Stories260K(t *testing.T) {
	ck, err := Default()
	require.NoError(t, err)
	w := ck.Weights
	// 260,032 float32 weights without the two legacy RoPE tables (computed by
	// hand from the header), the tied head counted once.
	before := w.WeightBytes()
	assert.Equal(t, WeightBytes{Float32: 4 * 260032}, before)

	orig := make(map[string][]float32)
	for _, lin := range w.Linears() {
		orig[lin.Name] = lin.Dense
	}
	emb := w.Embedding
	require.NoError(t, w.Quantize(context.Background(), nf4Quantize))
	require.NoError(t, w.Validate())

	var storage int64
	for _, lin := range w.Linears() {
		require.Nil(t, lin.Dense, lin.Name)
		require.NotNil(t, lin.Quantized, lin.Name)
		assert.Equal(t, "nf4", lin.Quantized.Format())
		storage += lin.Quantized.StorageBytes()

		// Sanity: dequantized rows stay close to the originals (NF4's
		// largest step is under 0.35 of the block absmax).
		got := make([]float32, lin.Out*lin.In)
		require.NoError(t, lin.Quantized.DequantizeRows(got, 0, lin.Out))
		var maxAbs, maxErr float64
		for i, x := range orig[lin.Name] {
			maxAbs = max(maxAbs, abs64(float64(x)))
			maxErr = max(maxErr, abs64(float64(x-got[i])))
		}
		assert.Less(t, maxErr, 0.35*maxAbs, lin.Name)
	}
	assert.Same(t, &emb[0], &w.Embedding[0], "embedding untouched")
	assert.Same(t, &emb[0], &w.Output.Dense[0], "head stays dense and tied")
	after := w.WeightBytes()
	// Dense left: embedding 512×64, 11 norms of 64.
	assert.Equal(t, int64(4*(512*64+11*64)), after.Float32)
	assert.Equal(t, storage, after.Quantized)
	assert.Equal(t, after.Float32+after.Quantized, after.Total())

	// A second pass leaves quantized linears alone.
	require.NoError(t, w.Quantize(context.Background(), func([]float32, int, int) (quant.Matrix, error) {
		return nil, errors.New("must not be called")
	}))
}

func abs64(x float64) float64 {
	if x < 0 {
		return -x
	}
	return x
}

func TestQuantizeErrors(t *testing.T) {
	ck, err := Default()
	require.NoError(t, err)
	w := ck.Weights
	calls := 0
	err = w.Quantize(context.Background(), func(d []float32, rows, cols int) (quant.Matrix, error) {
		if calls++; calls == 3 {
			return nil, errors.New("boom")
		}
		return fakeMatrix{rows, cols}, nil
	})
	assert.ErrorContains(t, err, "quantizing model.layers.0.self_attn.v_proj: boom")
	// Converted linears stay converted, the rest dense: still valid.
	assert.NotNil(t, w.Layers[0].K.Quantized)
	assert.NotNil(t, w.Layers[0].V.Dense)
	require.NoError(t, w.Validate())

	err = w.Quantize(context.Background(), func(d []float32, rows, cols int) (quant.Matrix, error) { return fakeMatrix{cols, rows}, nil })
	assert.ErrorContains(t, err, "model.layers.0.self_attn.v_proj: quantizer returned a [64 32] matrix, want [32 64]")
	err = w.Quantize(context.Background(), func(d []float32, rows, cols int) (quant.Matrix, error) { return nil, nil })
	assert.ErrorContains(t, err, "quantizer returned no matrix")

	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	err = w.Quantize(ctx, fakeQuantize)
	assert.ErrorIs(t, err, context.Canceled)

	require.NoError(t, w.Quantize(context.Background(), fakeQuantize))
	require.NoError(t, w.Validate())
}

// heapLive returns HeapAlloc and HeapInuse after a full collection.
func heapLive() (alloc, inuse int64) {
	runtime.GC()
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return int64(m.HeapAlloc), int64(m.HeapInuse)
}

// TestNF4MemoryStories110M measures, with the Go heap statistics, the
// resident bytes of the block linears of a stories110M-shaped model (dim 768,
// hidden 2048, 12 layers, 12 heads, vocab 32000; random weights) held dense
// and after in-place NF4 quantization with default options. The ratio must be
// at most 14%: 4-bit codes plus double-quantized scales are about 4.127/32 =
// 12.9% of float32, so anything above 14% means dense data was not freed.
func TestNF4MemoryStories110M(t *testing.T) {
	if testing.Short() {
		t.Skip("allocates ~350 MB and quantizes 85M weights")
	}
	cfg := Config{Dim: 768, HiddenDim: 2048, Layers: 12, Heads: 12, KVHeads: 12, HeadDim: 64,
		VocabSize: 32000, MaxSeqLen: 1024, NormEps: 1e-5, RopeTheta: 10000, TiedOutput: true}
	rng := rand.New(rand.NewPCG(110, 1))
	gaussian := func(n int) []float32 {
		v := make([]float32, n)
		for i := range v {
			v[i] = float32(0.02 * rng.NormFloat64())
		}
		return v
	}
	w := NewWeights(cfg)
	w.Embedding = gaussian(cfg.VocabSize * cfg.Dim)
	w.Output.Dense = w.Embedding
	w.Norm = gaussian(cfg.Dim)
	for l := range w.Layers {
		w.Layers[l].AttnNorm, w.Layers[l].MLPNorm = gaussian(cfg.Dim), gaussian(cfg.Dim)
	}

	baseAlloc, baseInuse := heapLive()
	var params int64
	for _, lin := range w.Linears() {
		lin.Dense = gaussian(lin.Out * lin.In)
		params += int64(lin.Out * lin.In)
	}
	require.NoError(t, w.Validate())
	denseAlloc, denseInuse := heapLive()
	require.NoError(t, w.Quantize(context.Background(), nf4Quantize))
	require.NoError(t, w.Validate())
	nf4Alloc, nf4Inuse := heapLive()

	dense, quantized := denseAlloc-baseAlloc, nf4Alloc-baseAlloc
	ratio := float64(quantized) / float64(dense)
	t.Logf("block linears: %d params; HeapAlloc dense %.1f MB, NF4 %.1f MB (%.2f%%, %.3f bits/param); HeapInuse dense %.1f MB, NF4 %.1f MB; NF4 StorageBytes %.1f MB",
		params, mb(dense), mb(quantized), 100*ratio, 32*ratio, mb(denseInuse-baseInuse), mb(nf4Inuse-baseInuse), mb(w.WeightBytes().Quantized))
	// The dense measurement must account for the float32 data (4 bytes per
	// parameter, within 1%), or the baseline is wrong.
	assert.InEpsilon(t, 4*float64(params), float64(dense), 0.01)
	assert.LessOrEqual(t, ratio, 0.14, fmt.Sprintf("NF4 holds %.2f%% of the float32 bytes", 100*ratio))
	runtime.KeepAlive(w)
}

func mb(b int64) float64 { return float64(b) / (1 << 20) }
