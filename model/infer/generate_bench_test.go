package infer

import (
	"context"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/golora/golora/internal/blas"
	"github.com/golora/golora/internal/kernels"
	"github.com/golora/golora/model"
	"github.com/golora/golora/nf4"
	"github.com/golora/golora/quant"
)

// stories15MConfig is the shape of llama2.c's stories15M: dim 288, hidden
// 768, 6 layers, 6 heads, vocabulary 32000, 256 positions, shared classifier.
var stories15MConfig = model.Config{
	Dim: 288, HiddenDim: 768, Layers: 6, Heads: 6, KVHeads: 6, HeadDim: 48, VocabSize: 32000,
	MaxSeqLen: 256, NormEps: 1e-5, RopeTheta: 10000, TiedOutput: true,
}

// stories110MConfig is the shape of llama2.c's stories110M: dim 768, hidden
// 2048, 12 layers, 12 heads, vocabulary 32000, 1024 positions (256 here, as
// in the stories15M case), shared classifier.
var stories110MConfig = model.Config{
	Dim: 768, HiddenDim: 2048, Layers: 12, Heads: 12, KVHeads: 12, HeadDim: 64, VocabSize: 32000,
	MaxSeqLen: 256, NormEps: 1e-5, RopeTheta: 10000, TiedOutput: true,
}

// benchModel is a model of the benchmarks, built on first use so that
// running one sub-benchmark does not build the others.
type benchModel struct {
	name  string
	build func(testing.TB) *model.Weights
	w     *model.Weights
}

func (m *benchModel) weights(b *testing.B) *model.Weights {
	if m.w == nil {
		m.w = m.build(b)
	}
	return m.w
}

// benchModels returns the models of the benchmarks: dense and NF4 (QLoRA's
// setting; the output head stays dense) for random stories15M- and
// stories110M-shaped models and for stories260K, and the same random models
// read from a BF16 checkpoint with NF4 linears ("bf16-nf4": a BF16 head).
func benchModels() []*benchModel {
	toNF4 := func(tb testing.TB, w *model.Weights) *model.Weights {
		err := w.Quantize(context.Background(), nf4.Quantizer(nf4.Options{}))
		if err != nil {
			tb.Fatal(err)
		}
		return w
	}
	stories260K := func(tb testing.TB) *model.Weights {
		w, _ := loadStories(tb)
		return w
	}
	// bf16NF4 is the model a QLoRA user loads: a BF16 Hugging Face
	// checkpoint read with NF4 linears, its embedding (and so its tied
	// head) kept in BF16 as the checkpoint stores it.
	bf16NF4 := func(tb testing.TB, w *model.Weights) *model.Weights {
		dir := tb.TempDir()
		if err := model.WriteHF(dir, w, model.BF16); err != nil {
			tb.Fatal(err)
		}
		b, err := model.Load(context.Background(), dir, model.LoadOptions{WeightsOnly: true, Quantizer: nf4.Quantizer(nf4.Options{})})
		if err != nil {
			tb.Fatal(err)
		}
		return b.Weights
	}
	return []*benchModel{
		{name: "stories15M/dense", build: func(tb testing.TB) *model.Weights { return model.RandomWeights(stories15MConfig, 15) }},
		{name: "stories15M/nf4", build: func(tb testing.TB) *model.Weights { return toNF4(tb, model.RandomWeights(stories15MConfig, 15)) }},
		{name: "stories110M/dense", build: func(tb testing.TB) *model.Weights { return model.RandomWeights(stories110MConfig, 110) }},
		{name: "stories110M/nf4", build: func(tb testing.TB) *model.Weights { return toNF4(tb, model.RandomWeights(stories110MConfig, 110)) }},
		{name: "stories15M/bf16-nf4", build: func(tb testing.TB) *model.Weights { return bf16NF4(tb, model.RandomWeights(stories15MConfig, 15)) }},
		{name: "stories110M/bf16-nf4", build: func(tb testing.TB) *model.Weights { return bf16NF4(tb, model.RandomWeights(stories110MConfig, 110)) }},
		{name: "stories260K/dense", build: stories260K},
		{name: "stories260K/nf4", build: func(tb testing.TB) *model.Weights { return toNF4(tb, stories260K(tb)) }},
	}
}

// BenchmarkGenerateDecode measures the decode step: one token through the
// whole model with the KV cache, at positions 16 to MaxSeqLen (the cache is
// refilled with a 16-token prefill, untimed, when it is full). Dense and NF4
// run side by side, each with the model's float32 head and, as "+head8",
// with HeadInt8; NF4 also with ActivationsInt8, as "+act8"; tokens/s is the
// figure to compare, and fastest-step-tokens/s (the fastest step's rate,
// at the shortest context) the one to compare builds by on a busy machine.
func BenchmarkGenerateDecode(b *testing.B) {
	for _, m := range benchModels() {
		acts := []ActivationPrecision{ActivationsExact}
		if strings.HasSuffix(m.name, "/nf4") {
			acts = append(acts, ActivationsInt8)
		}
		for _, act := range acts {
			for _, head := range []HeadPrecision{HeadExact, HeadInt8} {
				suffix := ""
				if act == ActivationsInt8 {
					suffix += "+act8"
				}
				if head == HeadInt8 {
					suffix += "+head8"
				}
				opts := GeneratorOptions{Head: head, Activations: act}
				b.Run(m.name+suffix+"/"+blas.Name(), func(b *testing.B) { benchDecode(b, m.weights(b), opts) })
			}
		}
	}
}

// benchDecode is one model of BenchmarkGenerateDecode.
func benchDecode(b *testing.B, w *model.Weights, opts GeneratorOptions) {
	g, err := NewGenerator(w, opts)
	if err != nil {
		b.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(1, 2))
	prompt := make([]int, 16)
	for i := range prompt {
		prompt[i] = rng.IntN(w.Config.VocabSize)
	}
	refill := func() {
		g.Reset()
		if _, err := g.Prefill(prompt); err != nil {
			b.Fatal(err)
		}
	}
	refill()
	b.ReportAllocs()
	b.ResetTimer()
	fastest := time.Hour
	for i := range b.N {
		if g.Pos() == g.MaxLen() {
			b.StopTimer()
			refill()
			b.StartTimer()
		}
		start := time.Now()
		if _, err := g.Step(prompt[i%len(prompt)]); err != nil {
			b.Fatal(err)
		}
		fastest = min(fastest, time.Since(start))
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "tokens/s")
	// On a machine shared with other work, the fastest step is the one
	// least slowed by it: a steadier figure to compare two builds by.
	b.ReportMetric(1/fastest.Seconds(), "fastest-step-tokens/s")
}

// BenchmarkGeneratePrefill compares a 128-token prompt run in batched passes
// (matrix-matrix products, the default) with the same prompt fed one token
// at a time.
func BenchmarkGeneratePrefill(b *testing.B) {
	w := model.RandomWeights(stories15MConfig, 15)
	rng := rand.New(rand.NewPCG(3, 4))
	prompt := make([]int, 128)
	for i := range prompt {
		prompt[i] = rng.IntN(w.Config.VocabSize)
	}
	for _, batch := range []int{1, DefaultPrefillBatch} {
		name := "batched"
		if batch == 1 {
			name = "token-by-token"
		}
		b.Run("stories15M/dense/"+blas.Name()+"/"+name, func(b *testing.B) {
			g, err := NewGenerator(w, GeneratorOptions{PrefillBatch: batch})
			if err != nil {
				b.Fatal(err)
			}
			b.ReportAllocs()
			for b.Loop() {
				g.Reset()
				if _, err := g.Prefill(prompt); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.N*len(prompt))/b.Elapsed().Seconds(), "tokens/s")
		})
	}
}

// BenchmarkDecodeActivationsAB compares ActivationsInt8 with exact
// products on the NF4 models (both with HeadInt8) in one process, one
// decode step of each in turn (alternating which goes first), so that a
// machine whose load drifts slows both alike: "exact" and "act8" tokens/s, and "speedup", the ratio of
// their total step times.
func BenchmarkDecodeActivationsAB(b *testing.B) {
	exact := GeneratorOptions{Head: HeadInt8}
	act8 := GeneratorOptions{Head: HeadInt8, Activations: ActivationsInt8}
	decodeAB(b, [2]GeneratorOptions{exact, act8}, nil, func(b *testing.B, spent [2]time.Duration) {
		b.ReportMetric(float64(b.N)/spent[0].Seconds(), "exact-tokens/s")
		b.ReportMetric(float64(b.N)/spent[1].Seconds(), "act8-tokens/s")
		b.ReportMetric(spent[0].Seconds()/spent[1].Seconds(), "speedup")
	})
}

// BenchmarkDecodeScalesAB compares two ways ActivationsInt8 (with HeadInt8)
// can give the NF4 block scales to the int8 kernel: "default" passes the
// scales decoded once to float32 (4 bytes per block read from memory each
// step), "dq" passes none, so the kernel decodes the double-quantized
// scales (about 1 byte per block) for each chunk of rows.
func BenchmarkDecodeScalesAB(b *testing.B) { benchDecodeVariantAB(b, "dq") }

// BenchmarkDecodeFusedAB compares ActivationsInt8 (with HeadInt8) with the
// linears that read one vector split over the team as one job ("fused",
// Generator.linears) and one job per linear ("unfused").
func BenchmarkDecodeFusedAB(b *testing.B) { benchDecodeVariantAB(b, "unfused") }

// BenchmarkDecodeHeadAB compares ActivationsInt8 with HeadInt8 whose head
// multiplies the int8 vector (nf4.Int8Matrix, "default", where the head's
// rows are whole pairs of 128) with the head multiplying the float32
// vector ("float-head", kernels.Int8Matrix).
func BenchmarkDecodeHeadAB(b *testing.B) { benchDecodeVariantAB(b, "float-head") }

// BenchmarkDecodeChunksAB compares the single-row products split in about
// chunksPerWorker chunks per goroutine of the team ("default") with 1 and
// 4 ("chunks1", "chunks4"), ActivationsInt8 with HeadInt8.
func BenchmarkDecodeChunksAB(b *testing.B) {
	for _, v := range []string{"chunks1", "chunks4"} {
		b.Run(v, func(b *testing.B) { benchDecodeVariantAB(b, v) })
	}
}

// benchDecodeVariantAB runs one decode step of ActivationsInt8 with
// HeadInt8 and one of the same with variant in turn; "speedup" is the
// variant's total step time over the default's.
func benchDecodeVariantAB(b *testing.B, variant string) {
	opts := GeneratorOptions{Head: HeadInt8, Activations: ActivationsInt8}
	vary := func(g *Generator) {
		switch variant {
		case "dq":
			for _, l := range g.int8Act {
				l.absmax = nil
			}
		case "unfused":
			g.fuseInt8 = false
		case "chunks1":
			g.chunksPerWorker = 1
		case "chunks4":
			g.chunksPerWorker = 4
		case "float-head":
			if g.head8 != nil {
				out := g.w.Output
				head, err := kernels.QuantizeInt8(out.Dense, out.Out, out.In)
				if err != nil {
					b.Fatal(err)
				}
				g.head, g.head8 = head, nil
			}
		}
	}
	decodeAB(b, [2]GeneratorOptions{opts, opts}, vary, func(b *testing.B, spent [2]time.Duration) {
		b.ReportMetric(float64(b.N)/spent[0].Seconds(), "default-tokens/s")
		b.ReportMetric(float64(b.N)/spent[1].Seconds(), variant+"-tokens/s")
		b.ReportMetric(spent[1].Seconds()/spent[0].Seconds(), "speedup")
	})
}

// decodeAB runs, on each NF4 benchmark model but stories260K, stepAB on a
// Generator made with opts[0] and one made with opts[1], then changed by
// vary if not nil, and report on the time each spent.
func decodeAB(b *testing.B, opts [2]GeneratorOptions, vary func(*Generator), report func(b *testing.B, spent [2]time.Duration)) {
	for _, m := range benchModels() {
		if !strings.HasSuffix(m.name, "/nf4") || strings.HasPrefix(m.name, "stories260K") {
			continue
		}
		b.Run(m.name, func(b *testing.B) {
			w := m.weights(b)
			var gens [2]*Generator
			for i := range gens {
				g, err := NewGenerator(w, opts[i])
				if err != nil {
					b.Fatal(err)
				}
				gens[i] = g
			}
			if vary != nil {
				vary(gens[1])
			}
			b.ResetTimer()
			report(b, stepAB(b, gens))
		})
	}
}

// stepAB runs b.N decode steps on each generator, alternating which goes
// first (the second runs while the first's helpers may still spin), and
// returns the time each spent; it reports "fastest-speedup", the ratio of
// the generators' fastest steps (the second's over the first's time), the
// figure least disturbed by other work on a busy machine.
func stepAB(b *testing.B, gens [2]*Generator) [2]time.Duration {
	var spent [2]time.Duration
	fastest := [2]time.Duration{time.Hour, time.Hour}
	defer func() { b.ReportMetric(fastest[1].Seconds()/fastest[0].Seconds(), "fastest-speedup") }()
	for i := range b.N {
		for j := range gens {
			k := (i + j) % 2
			g := gens[k]
			if g.Pos() == g.MaxLen() {
				g.Reset()
			}
			start := time.Now()
			if _, err := g.Step(1 + i%100); err != nil {
				b.Fatal(err)
			}
			d := time.Since(start)
			spent[k] += d
			fastest[k] = min(fastest[k], d)
		}
	}
	return spent
}

// BenchmarkDecodeBF16HeadAB compares decode steps of the NF4 models with
// their float32 embedding and tied head ("f32") against the same model with
// both held as one BF16 matrix ("bf16", as a QLoRA load of a BF16
// checkpoint keeps them; the values are rounded to BF16 for both), with
// exact activations and head, steps alternating; "speedup" is f32's step
// time over bf16's.
func BenchmarkDecodeBF16HeadAB(b *testing.B) {
	for _, m := range benchModels() {
		if !strings.HasSuffix(m.name, "/nf4") || strings.HasPrefix(m.name, "stories260K") {
			continue
		}
		b.Run(m.name, func(b *testing.B) {
			w32 := *m.weights(b)
			c := w32.Config
			emb, err := quant.ToBF16(w32.Embedding, c.VocabSize, c.Dim)
			if err != nil {
				b.Fatal(err)
			}
			w32.Embedding = make([]float32, c.VocabSize*c.Dim)
			if err := emb.DequantizeRows(w32.Embedding, 0, c.VocabSize); err != nil {
				b.Fatal(err)
			}
			w32.Output = &model.Linear{Name: w32.Output.Name, Out: c.VocabSize, In: c.Dim, Dense: w32.Embedding}
			w16 := w32
			w16.Embedding, w16.EmbeddingMatrix = nil, emb
			w16.Output = &model.Linear{Name: w32.Output.Name, Out: c.VocabSize, In: c.Dim, Quantized: emb}
			var gens [2]*Generator
			for i, w := range []*model.Weights{&w32, &w16} {
				if gens[i], err = NewGenerator(w, GeneratorOptions{}); err != nil {
					b.Fatal(err)
				}
			}
			b.ResetTimer()
			spent := stepAB(b, gens)
			b.ReportMetric(float64(b.N)/spent[0].Seconds(), "f32-tokens/s")
			b.ReportMetric(float64(b.N)/spent[1].Seconds(), "bf16-tokens/s")
			b.ReportMetric(spent[0].Seconds()/spent[1].Seconds(), "speedup")
		})
	}
}
