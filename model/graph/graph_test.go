package graph

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"math"
	"math/rand/v2"
	"runtime"
	"testing"

	"gorgonia.org/gorgonia"
	"gorgonia.org/tensor"

	"github.com/golora/golora/internal/testmodel"
	"github.com/golora/golora/model"
	"github.com/golora/golora/model/tokenizer"
	"github.com/golora/golora/nf4"
)

// graphStoryText is a short TinyStories-like paragraph written for these tests.
const graphStoryText = "Once upon a time, there was a little dog named Max. Max liked to run in the big green park " +
	"with his friend Sue. One day, Sue found a red ball under a tree. She threw the ball and Max ran fast to get it. " +
	"They played all day and were very happy. When the sun went down, they went home to eat and sleep."

// graphStories260K returns a fresh copy of the real stories260K model
// (embedded in the package) and its tok512 tokenizer.
func graphStories260K(t testing.TB) (*model.Weights, tokenizer.Tokenizer) {
	t.Helper()
	ck, err := model.Default()
	if err != nil {
		t.Fatalf("loading stories260K: %v", err)
	}
	return ck.Weights, ck.Tokenizer
}

// graphTokens returns BOS followed by the encoding of text.
func graphTokens(tok tokenizer.Tokenizer, text string) []int {
	return append([]int{tok.BOS()}, tok.Encode(text)...)
}

// graphReference is the plain float64 forward pass the graph is checked
// against: loops only, written from the model's definition (Hugging Face
// LlamaForCausalLM). It returns the logits of every position of every
// sequence, [len(tokens), vocab]; tokens holds batch sequences of seqLen.
func graphReference(w *model.Weights, tokens []int, seqLen int) [][]float64 {
	c := w.Config
	lin := func(l *model.Linear) [][]float64 { return graphDenseRows(l) }
	var logits [][]float64
	for start := 0; start < len(tokens); start += seqLen {
		seq := tokens[start : start+seqLen]
		x := make([][]float64, seqLen)
		for t, id := range seq {
			x[t] = graphF64(w.Embedding[id*c.Dim : (id+1)*c.Dim])
		}
		for l := range w.Layers {
			layer := &w.Layers[l]
			wq, wk, wv, wo := lin(layer.Q), lin(layer.K), lin(layer.V), lin(layer.O)
			q := make([][]float64, seqLen)
			k := make([][]float64, seqLen)
			v := make([][]float64, seqLen)
			for t := range seqLen {
				xn := graphRefRMSNorm(x[t], layer.AttnNorm, c.NormEps)
				q[t] = graphRefRoPE(graphRefMatVec(wq, xn), t, c.HeadDim, c.RopeTheta)
				k[t] = graphRefRoPE(graphRefMatVec(wk, xn), t, c.HeadDim, c.RopeTheta)
				v[t] = graphRefMatVec(wv, xn)
			}
			for t := range seqLen {
				att := make([]float64, c.Heads*c.HeadDim)
				for h := range c.Heads {
					kvh := h / (c.Heads / c.KVHeads)
					scores := make([]float64, t+1)
					maxScore := math.Inf(-1)
					for j := 0; j <= t; j++ {
						var s float64
						for i := range c.HeadDim {
							s += q[t][h*c.HeadDim+i] * k[j][kvh*c.HeadDim+i]
						}
						scores[j] = s / math.Sqrt(float64(c.HeadDim))
						maxScore = math.Max(maxScore, scores[j])
					}
					var sum float64
					for j := range scores {
						scores[j] = math.Exp(scores[j] - maxScore)
						sum += scores[j]
					}
					for j := range scores {
						for i := range c.HeadDim {
							att[h*c.HeadDim+i] += scores[j] / sum * v[j][kvh*c.HeadDim+i]
						}
					}
				}
				for i, o := range graphRefMatVec(wo, att) {
					x[t][i] += o
				}
			}
			wg, wu, wd := lin(layer.Gate), lin(layer.Up), lin(layer.Down)
			for t := range seqLen {
				xn := graphRefRMSNorm(x[t], layer.MLPNorm, c.NormEps)
				g, u := graphRefMatVec(wg, xn), graphRefMatVec(wu, xn)
				for i := range g {
					g[i] = g[i] / (1 + math.Exp(-g[i])) * u[i]
				}
				for i, d := range graphRefMatVec(wd, g) {
					x[t][i] += d
				}
			}
		}
		wout := lin(w.Output)
		for t := range seqLen {
			logits = append(logits, graphRefMatVec(wout, graphRefRMSNorm(x[t], w.Norm, c.NormEps)))
		}
	}
	return logits
}

// graphReferenceLoss is the mean over non-ignored positions of
// log Σ exp(logits) − logits[target].
func graphReferenceLoss(logits [][]float64, targets []int) float64 {
	var sum float64
	n := 0
	for r, t := range targets {
		if t == IgnoreTarget {
			continue
		}
		m := math.Inf(-1)
		for _, v := range logits[r] {
			m = math.Max(m, v)
		}
		var s float64
		for _, v := range logits[r] {
			s += math.Exp(v - m)
		}
		sum += m + math.Log(s) - logits[r][t]
		n++
	}
	if n == 0 {
		return 0
	}
	return sum / float64(n)
}

func graphF64(x []float32) []float64 {
	out := make([]float64, len(x))
	for i, v := range x {
		out[i] = float64(v)
	}
	return out
}

// graphDenseRows returns a linear layer's weight as float64 rows, dequantizing a
// quantized one.
func graphDenseRows(l *model.Linear) [][]float64 {
	w := l.Dense
	if l.Quantized != nil {
		w = make([]float32, l.Out*l.In)
		if err := l.Quantized.DequantizeRows(w, 0, l.Out); err != nil {
			panic(err)
		}
	}
	rows := make([][]float64, l.Out)
	for o := range rows {
		rows[o] = graphF64(w[o*l.In : (o+1)*l.In])
	}
	return rows
}

func graphRefMatVec(w [][]float64, x []float64) []float64 {
	y := make([]float64, len(w))
	for o, row := range w {
		for i, v := range row {
			y[o] += v * x[i]
		}
	}
	return y
}

func graphRefRMSNorm(x []float64, w []float32, eps float64) []float64 {
	var ss float64
	for _, v := range x {
		ss += v * v
	}
	r := 1 / math.Sqrt(ss/float64(len(x))+eps)
	y := make([]float64, len(x))
	for i, v := range x {
		y[i] = v * r * float64(w[i])
	}
	return y
}

// graphRefRoPE is Hugging Face's apply_rotary_pos_emb: x·cos + rotate_half(x)·sin,
// per head, with rotate_half(x) = [−x₂, x₁] for the halves x₁, x₂.
func graphRefRoPE(x []float64, pos, headDim int, theta float64) []float64 {
	y := make([]float64, len(x))
	half := headDim / 2
	for h := 0; h < len(x); h += headDim {
		for i := range headDim {
			freq := math.Pow(theta, -2*float64(i%half)/float64(headDim))
			angle := float64(pos) * freq
			var rot float64
			if i < half {
				rot = -x[h+i+half]
			} else {
				rot = x[h+i-half]
			}
			y[h+i] = x[h+i]*math.Cos(angle) + rot*math.Sin(angle)
		}
	}
	return y
}

// graphBF16 rounds to the nearest bfloat16 (ties to even), as a checkpoint stored
// in BF16 would hold the value.
func graphBF16(v float32) float32 {
	b := math.Float32bits(v)
	b += 0x7fff + (b>>16)&1
	return math.Float32frombits(b &^ 0xffff)
}

// graphViaHF writes w as a Hugging Face checkpoint in BF16 with WriteHF and
// loads it back with Load, so that the graph runs on what a real BF16
// checkpoint holds.
func graphViaHF(t *testing.T, w *model.Weights) *model.Weights {
	t.Helper()
	dir := t.TempDir()
	if err := model.WriteHF(dir, w, model.BF16); err != nil {
		t.Fatal(err)
	}
	base, err := model.Load(context.Background(), dir, model.LoadOptions{WeightsOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	loaded := base.Weights
	// The float32 values must be the BF16 roundings of the originals.
	if got, want := loaded.Layers[0].Q.Dense[5], graphBF16(w.Layers[0].Q.Dense[5]); got != want {
		t.Fatalf("BF16 round trip: q_proj[5] = %v, want %v", got, want)
	}
	return loaded
}

// graphSynthetic builds a random model (testmodel.Synthetic) from seed,
// every value passed through round.
func graphSynthetic(c model.Config, seed uint64, round func(float32) float32) *model.Weights {
	return testmodel.Synthetic(c, rand.New(rand.NewPCG(seed, 1)), round)
}

// graphGQAConfig is a small model with grouped-query attention (3 query heads per
// KV head) and a head dimension that is not Dim/Heads.
var graphGQAConfig = model.Config{
	Dim: 40, HiddenDim: 72, Layers: 2, Heads: 6, KVHeads: 2, HeadDim: 8,
	VocabSize: 97, MaxSeqLen: 64, NormEps: 1e-5, RopeTheta: 10000,
}

func graphRandomTokens(rng *rand.Rand, n, vocab int) []int {
	out := make([]int, n)
	for i := range out {
		out[i] = rng.IntN(vocab)
	}
	return out
}

// graphTargets returns targets[i] = tokens[i+1] within each sequence and
// IgnoreTarget at each sequence's last position.
func graphTargets(tokens []int, seqLen int) []int {
	out := make([]int, len(tokens))
	for i := range tokens {
		if (i+1)%seqLen == 0 {
			out[i] = IgnoreTarget
		} else {
			out[i] = tokens[i+1]
		}
	}
	return out
}

// graphRun builds a graph for tokens, runs Forward and returns the graph and
// the loss.
func graphRun(t testing.TB, w *model.Weights, batch, seqLen int, tokens, targets []int) (*Graph, float32) {
	t.Helper()
	gr, err := New(w, Options{Batch: batch, SeqLen: seqLen})
	if err != nil {
		t.Fatal(err)
	}
	if err := gr.SetBatch(tokens, targets); err != nil {
		t.Fatal(err)
	}
	loss, err := gr.Forward(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return gr, loss
}

func graphMaxDiff(got []float32, want [][]float64) float64 {
	cols := len(want[0])
	var d float64
	for r, row := range want {
		for j, v := range row {
			d = math.Max(d, math.Abs(float64(got[r*cols+j])-v))
		}
	}
	return d
}

func TestGraphLogitsMatchReference(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 7))
	untied := graphGQAConfig
	untied.TiedOutput = false
	stories, tok := graphStories260K(t)
	cases := []struct {
		name          string
		w             *model.Weights
		batch, seqLen int
		tokens        []int
	}{
		{"stories260K", stories, 2, 24, graphTokens(tok, graphStoryText)[:48]},
		{"synthetic-gqa-untied-bf16", graphViaHF(t, graphSynthetic(untied, 3, func(v float32) float32 { return v })), 3, 17, graphRandomTokens(rng, 3*17, untied.VocabSize)},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			targets := graphTargets(tc.tokens, tc.seqLen)
			gr, loss := graphRun(t, tc.w, tc.batch, tc.seqLen, tc.tokens, targets)
			defer gr.Close()
			want := graphReference(tc.w, tc.tokens, tc.seqLen)
			got := gr.Logits.Value().Data().([]float32)
			d := graphMaxDiff(got, want)
			t.Logf("max |logit − reference| = %.3g", d)
			if d > 1e-4 {
				t.Errorf("logits differ from the float64 reference by up to %g, want ≤ 1e-4", d)
			}
			wantLoss := graphReferenceLoss(want, targets)
			t.Logf("loss %.6f, reference %.6f", loss, wantLoss)
			if math.Abs(float64(loss)-wantLoss) > 1e-5*math.Max(1, wantLoss) {
				t.Errorf("loss %v, reference %v", loss, wantLoss)
			}
		})
	}
}

// TestGraphGreedyStory checks the whole forward pass, RoPE layout included,
// against llama2.c's own documented output: greedy decoding of stories260K
// from "Once upon a time" prints the text below (shared fixtures README), so
// at every position of that text the graph's most likely next token must be
// the text's next token.
func TestGraphGreedyStory(t *testing.T) {
	const known = "Once upon a time, there was a little girl named Lily. She loved to play outside in the " +
		"park. One day, she saw a big, red ball. She wanted to play with it, but it was too high."
	w, tok := graphStories260K(t)
	tokens := graphTokens(tok, known)
	if want := []int{1, 403, 407, 261, 378}; fmt.Sprint(tokens[:5]) != fmt.Sprint(want) {
		t.Fatalf("prompt encodes to %v, want %v", tokens[:5], want)
	}
	n := len(tokens)
	gr, _ := graphRun(t, w, 1, n, tokens, graphTargets(tokens, n))
	defer gr.Close()
	logits := gr.Logits.Value().Data().([]float32)
	v := w.Config.VocabSize
	// Positions before the end of the prompt are not predictions of the run.
	for pos := 4; pos < n-1; pos++ {
		row := logits[pos*v : (pos+1)*v]
		best := 0
		for j, x := range row {
			if x > row[best] {
				best = j
			}
		}
		if best != tokens[pos+1] {
			t.Errorf("position %d: argmax %d, the greedy text has %d", pos, best, tokens[pos+1])
		}
	}
}

func TestLossMatchesReferenceWithIgnoreMask(t *testing.T) {
	w := graphSynthetic(graphGQAConfig, 11, func(v float32) float32 { return v })
	const batch, seqLen = 2, 9
	rng := rand.New(rand.NewPCG(5, 5))
	tokens := graphRandomTokens(rng, batch*seqLen, graphGQAConfig.VocabSize)
	targets := graphRandomTokens(rng, batch*seqLen, graphGQAConfig.VocabSize)
	for _, i := range []int{0, 3, 4, 8, 11, 17} {
		targets[i] = IgnoreTarget
	}
	gr, loss := graphRun(t, w, batch, seqLen, tokens, targets)
	defer gr.Close()
	want := graphReferenceLoss(graphReference(w, tokens, seqLen), targets)
	t.Logf("loss %.7f, reference %.7f", loss, want)
	if math.Abs(float64(loss)-want) > 1e-5*want {
		t.Errorf("loss %v, reference %v", loss, want)
	}

	all := make([]int, len(targets))
	for i := range all {
		all[i] = IgnoreTarget
	}
	if err := gr.SetBatch(tokens, all); err != nil {
		t.Fatal(err)
	}
	if loss, err := gr.Forward(context.Background()); err != nil || loss != 0 {
		t.Errorf("all targets ignored: loss %v, err %v; want 0, nil", loss, err)
	}
}

// graphQuantizeBlocks quantizes every linear layer of the transformer blocks
// (not the output head) to NF4 with QLoRA's default options.
func graphQuantizeBlocks(t testing.TB, w *model.Weights) {
	t.Helper()
	err := w.Quantize(context.Background(), nf4.Quantizer(nf4.Options{}))
	if err != nil {
		t.Fatal(err)
	}
}

func graphQuantizeLinear(t testing.TB, lin *model.Linear) {
	t.Helper()
	m, err := nf4.Quantize(lin.Dense, lin.Out, lin.In, nf4.Options{})
	if err != nil {
		t.Fatalf("quantizing %s: %v", lin.Name, err)
	}
	lin.Dense, lin.Quantized = nil, m
}

func TestGraphNF4LossIncrease(t *testing.T) {
	w, tok := graphStories260K(t)
	tokens := graphTokens(tok, graphStoryText)
	n := len(tokens) - 1
	inputs, targets := tokens[:n], tokens[1:]

	gr, dense := graphRun(t, w, 1, n, inputs, targets)
	gr.Close()
	graphQuantizeBlocks(t, w)
	gr, q := graphRun(t, w, 1, n, inputs, targets)
	gr.Close()

	rise := float64(q)/float64(dense) - 1
	t.Logf("stories260K mean loss on %d tokens: float32 %.4f, NF4 blocks %.4f (%+.2f%%)", n, dense, q, 100*rise)
	if rise >= 0.05 {
		t.Errorf("NF4 raises the loss by %.2f%%, want < 5%%", 100*rise)
	}
	// The NF4 graph must really run different weights.
	if q == dense {
		t.Errorf("NF4 loss equals the float32 loss exactly (%v): were the weights quantized?", q)
	}
}

// graphSnapshot copies, as bytes, everything of w a run must not change:
// every float32 tensor and every stored array of the NF4 matrices (codes,
// scales, nested scales, offset), each under a name for error messages.
func graphSnapshot(t testing.TB, w *model.Weights) map[string][]byte {
	t.Helper()
	out := map[string][]byte{}
	floats := func(name string, v []float32) {
		b := make([]byte, 0, 4*len(v))
		for _, f := range v {
			b = binary.LittleEndian.AppendUint32(b, math.Float32bits(f))
		}
		out[name] = b
	}
	add := func(lin *model.Linear) {
		if lin.Dense != nil {
			floats(lin.Name, lin.Dense)
			return
		}
		m, ok := lin.Quantized.(*nf4.Matrix)
		if !ok {
			t.Fatalf("%s: quantized as %T, want *nf4.Matrix", lin.Name, lin.Quantized)
		}
		p := m.Parts()
		out[lin.Name+".packed"] = append([]byte(nil), p.Packed...)
		out[lin.Name+".quant_absmax"] = append([]byte(nil), p.QuantAbsmax...)
		floats(lin.Name+".absmax", p.Absmax)
		floats(lin.Name+".nested_absmax", p.NestedAbsmax)
		floats(lin.Name+".nested_code", p.NestedCode)
		floats(lin.Name+".offset", []float32{p.Offset})
	}
	floats("embed_tokens", w.Embedding)
	floats("norm", w.Norm)
	for l := range w.Layers {
		layer := &w.Layers[l]
		floats(fmt.Sprintf("layers.%d.input_layernorm", l), layer.AttnNorm)
		floats(fmt.Sprintf("layers.%d.post_attention_layernorm", l), layer.MLPNorm)
		for _, lin := range []*model.Linear{layer.Q, layer.K, layer.V, layer.O, layer.Gate, layer.Up, layer.Down} {
			add(lin)
		}
	}
	add(w.Output)
	return out
}

func TestGraphWeightsUnchangedByTraining(t *testing.T) {
	w, tok := graphStories260K(t)
	graphQuantizeBlocks(t, w)
	// One dense block linear too, so both representations are covered.
	w.Layers[0].Q.Quantized = nil
	w.Layers[0].Q.Dense = make([]float32, w.Layers[0].Q.Out*w.Layers[0].Q.In)
	for i := range w.Layers[0].Q.Dense {
		w.Layers[0].Q.Dense[i] = float32(math.Sin(float64(i)))
	}
	before := graphSnapshot(t, w)

	tokens := graphTokens(tok, graphStoryText)[:33]
	gr, err := New(w, Options{Batch: 1, SeqLen: 32})
	if err != nil {
		t.Fatal(err)
	}
	defer gr.Close()
	if _, err := gr.Differentiate(gr.Input); err != nil {
		t.Fatal(err)
	}
	if err := gr.SetBatch(tokens[:32], tokens[1:]); err != nil {
		t.Fatal(err)
	}
	for range 2 {
		if _, err := gr.ForwardBackward(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
	after := graphSnapshot(t, w)
	if len(after) != len(before) {
		t.Fatalf("%d arrays after the runs, %d before", len(after), len(before))
	}
	for name, b := range before {
		if !bytes.Equal(b, after[name]) {
			t.Errorf("%s changed during forward+backward", name)
		}
	}
	if len(before[w.Layers[1].Up.Name+".packed"]) == 0 {
		t.Error("the snapshot holds no NF4 codes")
	}
}

// TestGraphRepeatedRuns checks that runs are independent of each other (the
// machine and the buffer arena are reset, stale buffers never leak into a
// result) and that repeating them does not grow the heap.
func TestGraphRepeatedRuns(t *testing.T) {
	w := graphSynthetic(graphGQAConfig, 2, func(v float32) float32 { return v })
	rng := rand.New(rand.NewPCG(9, 9))
	const batch, seqLen = 2, 16
	type input struct{ tokens, targets []int }
	var batches [2]input
	for i := range batches {
		tokens := graphRandomTokens(rng, batch*seqLen, graphGQAConfig.VocabSize)
		targets := graphTargets(tokens, seqLen)
		// Different ignored positions, so that a gradient row that is zero in
		// one batch is not in the other.
		for j := i; j < len(targets); j += 5 {
			targets[j] = IgnoreTarget
		}
		batches[i] = input{tokens, targets}
	}
	gr, err := New(w, Options{Batch: batch, SeqLen: seqLen})
	if err != nil {
		t.Fatal(err)
	}
	defer gr.Close()
	if _, err := gr.Differentiate(gr.Input); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	// run returns the loss and, for a backward run, a copy of the gradient
	// of this run alone.
	run := func(in input, backward bool) (float32, []float32) {
		if err := gr.SetBatch(in.tokens, in.targets); err != nil {
			t.Fatal(err)
		}
		if !backward {
			loss, err := gr.Forward(ctx)
			if err != nil {
				t.Fatal(err)
			}
			return loss, nil
		}
		if err := gr.ZeroGrad(); err != nil {
			t.Fatal(err)
		}
		loss, err := gr.ForwardBackward(ctx)
		if err != nil {
			t.Fatal(err)
		}
		g, err := gr.Input.Grad()
		if err != nil {
			t.Fatal(err)
		}
		return loss, append([]float32(nil), g.Data().([]float32)...)
	}
	// The training loss comes from the fused head and loss operator, the
	// forward one from the logits: they agree to float32 rounding, and
	// each must repeat exactly. loss[b][1] is batch b's training loss.
	var loss [2][2]float32
	var grad [2][]float32
	for i, in := range batches {
		loss[i][1], grad[i] = run(in, true)
		loss[i][0], _ = run(in, false)
		if d := math.Abs(float64(loss[i][0] - loss[i][1])); d > 1e-5*math.Abs(float64(loss[i][0])) {
			t.Errorf("batch %d: Forward loss %v, ForwardBackward loss %v", i, loss[i][0], loss[i][1])
		}
	}
	if loss[0][1] == loss[1][1] {
		t.Fatalf("two different batches gave the same loss %v", loss[0][1])
	}
	// Forward's logits are the reference logits after backward passes.
	run(batches[0], true)
	run(batches[1], false)
	want := graphReference(w, batches[1].tokens, seqLen)
	if d := graphMaxDiff(gr.Logits.Value().Data().([]float32), want); d > 1e-4 {
		t.Errorf("after ForwardBackward, logits differ from the reference by %g", d)
	}
	heap := func() uint64 {
		runtime.GC()
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		return ms.HeapAlloc
	}
	start := heap()
	for i := range 40 {
		b := i % 2
		backward := i%4 < 2
		l, g := run(batches[b], backward)
		want := loss[b][0]
		if backward {
			want = loss[b][1]
		}
		if l != want {
			t.Fatalf("run %d (batch %d, backward %v): loss %v, first run %v", i, b, backward, l, want)
		}
		for j := range g {
			if g[j] != grad[b][j] {
				t.Fatalf("run %d (batch %d): gradient[%d] = %v, first run %v", i, b, j, g[j], grad[b][j])
			}
		}
	}
	end := heap()
	t.Logf("live heap after the first runs %d KiB, after 40 more runs %d KiB", start>>10, end>>10)
	if end > start+start/2+1<<20 {
		t.Errorf("live heap grew from %d to %d bytes over 40 runs", start, end)
	}
}

// graphTestAdapter adds x·Aᵀ with a trainable A to the layers it is asked
// for: enough to check that the graph routes adapter terms and their
// gradients.
type graphTestAdapter struct {
	only   string
	params map[string]*gorgonia.Node
	rng    *rand.Rand
}

func (a *graphTestAdapter) Delta(g *gorgonia.ExprGraph, lin *model.Linear, x *gorgonia.Node) (*gorgonia.Node, error) {
	if a.only != "" && lin.Name != a.only {
		return nil, nil
	}
	init := make([]float32, lin.Out*lin.In)
	for i := range init {
		init[i] = float32(0.05 * a.rng.NormFloat64())
	}
	p := gorgonia.NewMatrix(g, tensor.Float32, gorgonia.WithShape(lin.Out, lin.In), gorgonia.WithName("adapter."+lin.Name),
		gorgonia.WithValue(tensor.New(tensor.WithShape(lin.Out, lin.In), tensor.WithBacking(init))))
	a.params[lin.Name] = p
	pt, err := gorgonia.Transpose(p)
	if err != nil {
		return nil, err
	}
	return gorgonia.Mul(x, pt)
}

// TestGraphAdapterGradient checks an adapter's parameter gradient through
// the whole network against central differences of the loss, and the
// accumulation and ZeroGrad contract.
func TestGraphAdapterGradient(t *testing.T) {
	w := graphSynthetic(graphGQAConfig, 4, func(v float32) float32 { return v })
	graphQuantizeLinear(t, w.Layers[1].Gate)
	ad := &graphTestAdapter{only: "model.layers.0.self_attn.v_proj", params: map[string]*gorgonia.Node{}, rng: rand.New(rand.NewPCG(1, 2))}
	const batch, seqLen = 2, 6
	gr, err := New(w, Options{Batch: batch, SeqLen: seqLen, Adapter: ad})
	if err != nil {
		t.Fatal(err)
	}
	defer gr.Close()
	p := ad.params[ad.only]
	if p == nil || len(ad.params) != 1 {
		t.Fatalf("adapter made %d parameters, want 1 for %s", len(ad.params), ad.only)
	}
	if _, err := gr.Differentiate(p); err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(3, 3))
	tokens := graphRandomTokens(rng, batch*seqLen, graphGQAConfig.VocabSize)
	if err := gr.SetBatch(tokens, graphTargets(tokens, seqLen)); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if _, err := gr.ForwardBackward(ctx); err != nil {
		t.Fatal(err)
	}
	gv, err := p.Grad()
	if err != nil {
		t.Fatal(err)
	}
	grad := append([]float32(nil), gv.Data().([]float32)...)

	pv := p.Value().Data().([]float32)
	lossAt := func(i int, v float32) float64 {
		old := pv[i]
		pv[i] = v
		defer func() { pv[i] = old }()
		l, err := gr.Forward(ctx)
		if err != nil {
			t.Fatal(err)
		}
		return float64(l)
	}
	graphCheckCoords(t, "adapter parameter", grad, func(i int) float64 {
		const eps = 1e-2
		return (lossAt(i, pv[i]+eps) - lossAt(i, pv[i]-eps)) / (2 * eps)
	}, 12, 2e-2)

	// A second run adds the same gradient again; ZeroGrad clears it.
	if _, err := gr.ForwardBackward(ctx); err != nil {
		t.Fatal(err)
	}
	twice := gv.Data().([]float32)
	for i := range grad {
		if math.Abs(float64(twice[i]-2*grad[i])) > 1e-5*math.Max(1, math.Abs(float64(grad[i]))) {
			t.Fatalf("after two runs gradient[%d] = %v, want 2 × %v", i, twice[i], grad[i])
		}
	}
	if err := gr.ZeroGrad(); err != nil {
		t.Fatal(err)
	}
	for i, v := range gv.Data().([]float32) {
		if v != 0 {
			t.Fatalf("after ZeroGrad gradient[%d] = %v", i, v)
		}
	}
}

// TestGraphInputGradient checks the gradient with respect to the embedded
// input, through every operator of the network, against central differences.
func TestGraphInputGradient(t *testing.T) {
	w := graphSynthetic(graphGQAConfig, 6, func(v float32) float32 { return v })
	const batch, seqLen = 2, 5
	rng := rand.New(rand.NewPCG(8, 8))
	tokens := graphRandomTokens(rng, batch*seqLen, graphGQAConfig.VocabSize)
	gr, err := New(w, Options{Batch: batch, SeqLen: seqLen})
	if err != nil {
		t.Fatal(err)
	}
	defer gr.Close()
	if _, err := gr.Differentiate(gr.Input); err != nil {
		t.Fatal(err)
	}
	if err := gr.SetBatch(tokens, graphTargets(tokens, seqLen)); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if _, err := gr.ForwardBackward(ctx); err != nil {
		t.Fatal(err)
	}
	gv, err := gr.Input.Grad()
	if err != nil {
		t.Fatal(err)
	}
	grad := append([]float32(nil), gv.Data().([]float32)...)
	x := gr.input.Float32s()
	graphCheckCoords(t, "embedded input", grad, func(i int) float64 {
		const eps = 1e-2
		old := x[i]
		defer func() { x[i] = old }()
		x[i] = old + eps
		lp, err := gr.Forward(ctx)
		if err != nil {
			t.Fatal(err)
		}
		x[i] = old - eps
		lm, err := gr.Forward(ctx)
		if err != nil {
			t.Fatal(err)
		}
		return (float64(lp) - float64(lm)) / (2 * eps)
	}, 16, 2e-2)
}

// graphCheckCoords compares the analytic gradient with numeric(i) on the
// count coordinates of largest gradient magnitude plus a spread of others;
// the error is measured relative to the largest gradient component.
func graphCheckCoords(t *testing.T, what string, grad []float32, numeric func(i int) float64, count int, tol float64) {
	t.Helper()
	var scale float64
	largest := 0
	for i, g := range grad {
		if a := math.Abs(float64(g)); a > scale {
			scale, largest = a, i
		}
	}
	if scale == 0 {
		t.Fatalf("%s: gradient is identically zero", what)
	}
	idx := []int{largest}
	for k := 1; k < count; k++ {
		idx = append(idx, (k*7919)%len(grad))
	}
	var worst float64
	for _, i := range idx {
		num := numeric(i)
		e := math.Abs(num-float64(grad[i])) / scale
		worst = math.Max(worst, e)
		if e > tol {
			t.Errorf("%s: d loss / d x[%d] = %.6g analytic, %.6g numeric (error %.2g of the largest %.3g)", what, i, grad[i], num, e, scale)
		}
	}
	t.Logf("%s: worst error %.2g of the largest gradient %.3g over %d coordinates", what, worst, scale, len(idx))
}

func TestGraphRejectsBadInput(t *testing.T) {
	w := graphSynthetic(graphGQAConfig, 1, func(v float32) float32 { return v })
	if _, err := New(w, Options{Batch: 1, SeqLen: graphGQAConfig.MaxSeqLen + 1}); err == nil {
		t.Error("New accepted a sequence longer than MaxSeqLen")
	}
	if _, err := New(w, Options{Batch: 0, SeqLen: 4}); err == nil {
		t.Error("New accepted batch 0")
	}
	bad := graphSynthetic(graphGQAConfig, 1, func(v float32) float32 { return v })
	bad.Layers[1].Up.Dense = bad.Layers[1].Up.Dense[:10]
	if _, err := New(bad, Options{Batch: 1, SeqLen: 4}); err == nil {
		t.Error("New accepted a truncated weight")
	}
	gr, err := New(w, Options{Batch: 1, SeqLen: 4})
	if err != nil {
		t.Fatal(err)
	}
	defer gr.Close()
	if _, err := gr.Forward(context.Background()); err == nil {
		t.Error("Forward ran without a batch")
	}
	for _, tc := range []struct {
		name            string
		tokens, targets []int
	}{
		{"short", []int{1, 2, 3}, []int{1, 2, 3}},
		{"token out of range", []int{1, 2, 97, 3}, []int{1, 2, 3, 4}},
		{"negative token", []int{1, -1, 2, 3}, []int{1, 2, 3, 4}},
		{"target out of range", []int{1, 2, 3, 4}, []int{1, 2, 3, 97}},
		{"target -2", []int{1, 2, 3, 4}, []int{1, -2, 3, 4}},
	} {
		if err := gr.SetBatch(tc.tokens, tc.targets); err == nil {
			t.Errorf("SetBatch accepted %s", tc.name)
		} else {
			t.Logf("%s: %v", tc.name, err)
		}
	}
	if _, err := gr.ForwardBackward(context.Background()); err == nil {
		t.Error("ForwardBackward ran before Differentiate")
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := gr.SetBatch([]int{1, 2, 3, 4}, []int{2, 3, 4, IgnoreTarget}); err != nil {
		t.Fatal(err)
	}
	if _, err := gr.Forward(ctx); err == nil {
		t.Error("Forward ran with a cancelled context")
	}
}
