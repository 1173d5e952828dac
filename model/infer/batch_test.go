package infer

import (
	"context"
	"math"
	"math/rand/v2"
	"runtime"
	"sync/atomic"
	"testing"
	"time"

	"github.com/golora/golora/internal/half"
	"github.com/golora/golora/internal/kernels"
	"github.com/golora/golora/model"
	"github.com/golora/golora/model/internal/archtest"
	"github.com/golora/golora/nf4"
)

// lowRank is a test adapter: y += (x·Aᵀ)·Bᵀ with random A [r, in] and
// B [out, r] for every linear layer, computed row by row.
type lowRank struct {
	r    int
	a, b map[*model.Linear][]float32
}

func newLowRank(w *model.Weights, r int, seed uint64) *lowRank {
	rng := rand.New(rand.NewPCG(seed, 1))
	lr := &lowRank{r: r, a: map[*model.Linear][]float32{}, b: map[*model.Linear][]float32{}}
	for _, lin := range append(w.Linears(), w.Output) {
		a, b := make([]float32, r*lin.In), make([]float32, lin.Out*r)
		for i := range a {
			a[i] = float32(rng.NormFloat64() / math.Sqrt(float64(lin.In)))
		}
		for i := range b {
			b[i] = float32(rng.NormFloat64() * 0.5 / math.Sqrt(float64(r)))
		}
		lr.a[lin], lr.b[lin] = a, b
	}
	return lr
}

func (lr *lowRank) AddDelta(lin *model.Linear, y, x []float32, n int) error {
	a, b := lr.a[lin], lr.b[lin]
	t := make([]float32, lr.r)
	for row := range n {
		xr := x[row*lin.In : (row+1)*lin.In]
		for k := range t {
			t[k] = dot(xr, a[k*lin.In:(k+1)*lin.In])
		}
		for o := range lin.Out {
			y[row*lin.Out+o] += dot(t, b[o*lr.r:(o+1)*lr.r])
		}
	}
	return nil
}

// lowRankFused is a lowRank that a Batch runs as a LowRankAdapter (the
// shrink and expand inside its team runs); its AddDelta, which the
// Generator calls, stays lowRank's row-by-row reference.
type lowRankFused struct {
	*lowRank
	a, bt     map[*model.Linear][]float32
	a16, bt16 map[*model.Linear][]uint16
}

// fused returns lr as a LowRankAdapter, its matrices in binary16 if half
// (lr's own values rounded to binary16 first, so that the reference uses
// the same values).
func (lr *lowRank) fused(half16 bool) *lowRankFused {
	f := &lowRankFused{lowRank: lr, a: map[*model.Linear][]float32{}, bt: map[*model.Linear][]float32{},
		a16: map[*model.Linear][]uint16{}, bt16: map[*model.Linear][]uint16{}}
	for lin, a := range lr.a {
		b := lr.b[lin]
		bt := make([]float32, len(b))
		for o := range lin.Out {
			for k := range lr.r {
				bt[k*lin.Out+o] = b[o*lr.r+k]
			}
		}
		if !half16 {
			f.a[lin], f.bt[lin] = a, bt
			continue
		}
		a16, bt16 := make([]uint16, len(a)), make([]uint16, len(bt))
		for i, v := range a {
			a16[i] = half.Float32ToF16(v)
			a[i] = half.F16ToFloat32(a16[i])
		}
		for i, v := range bt {
			bt16[i] = half.Float32ToF16(v)
			bt[i] = half.F16ToFloat32(bt16[i])
		}
		for o := range lin.Out {
			for k := range lr.r {
				b[o*lr.r+k] = bt[k*lin.Out+o]
			}
		}
		f.a16[lin], f.bt16[lin] = a16, bt16
	}
	return f
}

func (f *lowRankFused) LowRank(lin *model.Linear) (LowRank, error) {
	if a16 := f.a16[lin]; a16 != nil {
		return LowRank{R: f.r, Scale: 1, A16: a16, BT16: f.bt16[lin]}, nil
	}
	if a := f.a[lin]; a != nil {
		return LowRank{R: f.r, Scale: 1, A: a, BT: f.bt[lin]}, nil
	}
	return LowRank{}, nil
}

// TestBatchMatchesGeneratorPerRow runs six sequences — prompts of different
// lengths, prefilled in chunks of different sizes, the base and three
// adapters (one run by AddDelta, two as LowRankAdapters in float32 and
// binary16), rows sharing an adapter — through Batch steps, and each one
// alone through a Generator with its adapter: at every step the logits agree
// within float32 rounding and the greedy tokens are identical. Dense and NF4
// bases, and llama.cpp's Q8_0 GGUF, whose tied embedding and head stay Q8_0.
func TestBatchMatchesGeneratorPerRow(t *testing.T) {
	for _, name := range []string{"dense", "nf4", "gguf q8_0"} {
		t.Run(name, func(t *testing.T) {
			ck, err := model.Default()
			if name == "gguf q8_0" {
				ck, err = model.Load(context.Background(), "../../quant/ggml/testdata/stories260K.q8_0.llama.gguf", model.LoadOptions{WeightsOnly: true})
			}
			if err != nil {
				t.Fatal(err)
			}
			w := ck.Weights
			if name == "nf4" {
				if err := w.Quantize(context.Background(), nf4.Quantizer(nf4.Options{})); err != nil {
					t.Fatal(err)
				}
			}
			checkBatchMatchesGenerator(t, w, false)
			checkBatchMatchesGenerator(t, w, true)
		})
	}
}

// TestBatchArchitecturesMatchGeneratorPerRow is TestBatchMatchesGeneratorPerRow
// on the reference checkpoint of every architecture family the Generator
// runs (model/internal/archtest): Llama 3 and linear rope scaling, Qwen2's
// q/k/v biases, Qwen3's q/k norms, Phi-3's partial rotary and longrope,
// Mistral's sliding window (4 positions in mistral_window, shorter than the
// prompts).
func TestBatchArchitecturesMatchGeneratorPerRow(t *testing.T) {
	for _, name := range archtest.Families {
		t.Run(name, func(t *testing.T) {
			w, _ := archtest.Load(t, name)
			checkBatchMatchesGenerator(t, w, false)
			checkBatchMatchesGenerator(t, w, true)
		})
	}
}

// checkBatchMatchesGenerator is the comparison of
// TestBatchMatchesGeneratorPerRow on w. ad1 runs by AddDelta, unless
// allLowRank, ad2 and ad3 as LowRankAdapters (float32 and binary16),
// every adapter with a term on the head too. (With an AddDelta adapter in
// the batch, the MLP's gating runs apart from the gate and up projections.)
func checkBatchMatchesGenerator(t *testing.T, w *model.Weights, allLowRank bool) {
	t.Helper()
	var ad1 Adapter = newLowRank(w, 4, 1)
	if allLowRank {
		ad1 = newLowRank(w, 4, 1).fused(false)
	}
	ad2, ad3 := newLowRank(w, 8, 2).fused(false), newLowRank(w, 8, 3).fused(true)
	type stream struct {
		prompt []int
		chunk  int
		delta  Adapter
	}
	const decode = 12
	b, err := NewBatch(w)
	if err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(5, 5))
	tokens := func(n int) []int {
		n = min(n, b.MaxLen()-decode-1) // longrope's short context
		p := []int{1}
		for range n - 1 {
			p = append(p, 3+rng.IntN(min(500, w.Config.VocabSize-3)))
		}
		return p
	}
	streams := []stream{
		{tokens(3), 3, nil},
		{tokens(17), 5, ad1},
		{tokens(9), 4, ad1},
		{tokens(30), 8, ad2},
		{tokens(11), 4, ad3},
		{tokens(6), 6, ad3},
	}
	V := w.Config.VocabSize
	type state struct {
		seq    *Sequence
		fed    int
		logits []float32
		got    [][]float32 // logits after the prompt and each decoded token
		next   int
	}
	states := make([]*state, len(streams))
	for i, s := range streams {
		seq, err := b.NewSequence(len(s.prompt) + decode + 1)
		if err != nil {
			t.Fatal(err)
		}
		states[i] = &state{seq: seq, logits: make([]float32, V), next: -1}
	}
	for step := 0; ; step++ {
		var rows []BatchRow
		var owners []*state
		for i, s := range streams {
			st := states[i]
			if len(st.got) > decode {
				continue
			}
			r := BatchRow{Seq: st.seq, Adapter: s.delta}
			if st.next >= 0 {
				r.Tokens = []int{st.next}
				r.Logits = st.logits
			} else {
				end := min(st.fed+s.chunk, len(s.prompt))
				r.Tokens = s.prompt[st.fed:end]
				st.fed = end
				if end == len(s.prompt) {
					r.Logits = st.logits
				}
			}
			rows = append(rows, r)
			owners = append(owners, st)
		}
		if len(rows) == 0 {
			break
		}
		if err := b.Step(rows); err != nil {
			t.Fatal(err)
		}
		for i, r := range rows {
			if r.Logits != nil {
				st := owners[i]
				st.got = append(st.got, append([]float32(nil), st.logits...))
				st.next, _ = argmaxLogits(st.logits)
			}
		}
	}
	for i, s := range streams {
		g, err := NewGenerator(w, GeneratorOptions{MaxLen: len(s.prompt) + decode + 1, Adapter: s.delta})
		if err != nil {
			t.Fatal(err)
		}
		logits, err := g.Prefill(s.prompt)
		if err != nil {
			t.Fatal(err)
		}
		for k, got := range states[i].got {
			var maxDiff, scale float64
			for j, v := range logits {
				maxDiff = max(maxDiff, math.Abs(float64(v-got[j])))
				scale = max(scale, math.Abs(float64(v)))
			}
			if maxDiff > 1e-4*max(1, scale) {
				t.Fatalf("stream %d step %d: logits differ by %g (scale %g)", i, k, maxDiff, scale)
			}
			want, _ := argmaxLogits(logits)
			if gotTok, _ := argmaxLogits(got); gotTok != want {
				t.Fatalf("stream %d step %d: batched greedy token %d, alone %d", i, k, gotTok, want)
			}
			if k < decode {
				if logits, err = g.Step(want); err != nil {
					t.Fatal(err)
				}
			}
		}
		if len(states[i].got) != decode+1 {
			t.Fatalf("stream %d: %d logits, want %d", i, len(states[i].got), decode+1)
		}
	}
}

// defaultBatch returns a Batch over the embedded model and its weights.
func defaultBatch(t *testing.T) (*Batch, *model.Weights) {
	t.Helper()
	ck, err := model.Default()
	if err != nil {
		t.Fatal(err)
	}
	b, err := NewBatch(ck.Weights)
	if err != nil {
		t.Fatal(err)
	}
	return b, ck.Weights
}

func TestBatchStepErrors(t *testing.T) {
	b, w := defaultBatch(t)
	s, _ := b.NewSequence(4)
	for _, tc := range []struct {
		name string
		rows []BatchRow
	}{
		{"too long", []BatchRow{{Seq: s, Tokens: []int{1, 2, 3, 4, 5}}}},
		{"bad token", []BatchRow{{Seq: s, Tokens: []int{1, 9999}}}},
		{"same sequence twice", []BatchRow{{Seq: s, Tokens: []int{1}}, {Seq: s, Tokens: []int{2}}}},
		{"short logits", []BatchRow{{Seq: s, Tokens: []int{1}, Logits: make([]float32, 3)}}},
		{"AllLogits of one token's length for two tokens", []BatchRow{{Seq: s, Tokens: []int{1, 2}, AllLogits: make([]float32, w.Config.VocabSize)}}},
	} {
		if err := b.Step(tc.rows); err == nil {
			t.Errorf("%s: no error", tc.name)
		}
	}
	if s.Pos() != 0 {
		t.Errorf("failed steps moved the sequence to %d", s.Pos())
	}
	if _, err := b.NewSequence(100000); err == nil {
		t.Error("NewSequence beyond the model's context: no error")
	}
}

func dot(a, b []float32) float32 {
	var s float32
	for i, v := range a {
		s += v * b[i]
	}
	return s
}

// TestBatchWorkersEndWithBatch: the goroutines a Batch starts for its steps
// end once the Batch is unreachable (they must not keep it alive).
func TestBatchWorkersEndWithBatch(t *testing.T) {
	if runtime.GOMAXPROCS(0) < 2 {
		t.Skip("one CPU: a Batch starts no goroutines")
	}
	ck, err := model.Default()
	if err != nil {
		t.Fatal(err)
	}
	before := runtime.NumGoroutine()
	for range 5 {
		b, err := NewBatch(ck.Weights)
		if err != nil {
			t.Fatal(err)
		}
		var rows []BatchRow
		for i := range 8 {
			s, err := b.NewSequence(8)
			if err != nil {
				t.Fatal(err)
			}
			rows = append(rows, BatchRow{Seq: s, Tokens: []int{1, 10 + i}, Logits: make([]float32, ck.Weights.Config.VocabSize)})
		}
		if err := b.Step(rows); err != nil {
			t.Fatal(err)
		}
	}
	for range 50 {
		runtime.GC()
		if runtime.NumGoroutine() <= before {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("%d goroutines before, %d after five Batches were dropped", before, runtime.NumGoroutine())
}

// TestBatchParallel: Parallel calls fn once for each index, with worker
// numbers in [0, Workers()), before and after a step, and for no index at
// all.
func TestBatchParallel(t *testing.T) {
	b, w := defaultBatch(t)
	s, err := b.NewSequence(8)
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range []int{0, 1, 3, 32, 100} {
		if n == 32 {
			if err := b.Step([]BatchRow{{Seq: s, Tokens: []int{1, 2}, Logits: make([]float32, w.Config.VocabSize)}}); err != nil {
				t.Fatal(err)
			}
		}
		counts := make([]atomic.Int32, n)
		var badWorker atomic.Bool
		b.Parallel(n, func(worker, i int) {
			if worker < 0 || worker >= b.Workers() {
				badWorker.Store(true)
			}
			counts[i].Add(1)
		})
		for i := range counts {
			if c := counts[i].Load(); c != 1 {
				t.Fatalf("n %d: index %d ran %d times", n, i, c)
			}
		}
		if badWorker.Load() {
			t.Errorf("n %d: a worker number outside [0, %d)", n, b.Workers())
		}
	}
}

// TestPackRowMatchesPackPanels packs a matrix of 45 rows (a full panel and
// a partial one) row by row, as attention's parts do, and checks the
// packing against kernels.PackPanels'.
func TestPackRowMatchesPackPanels(t *testing.T) {
	const n, in = 45, 40
	rng := rand.New(rand.NewPCG(9, 9))
	x := make([]float32, n*in)
	for i := range x {
		x[i] = rng.Float32()
	}
	want := make([]float32, kernels.PanelsLen(n, in))
	kernels.PackPanels(want, x, n, in)
	got := make([]float32, len(want))
	for t := range n {
		packRow(got, x[t*in:(t+1)*in], t)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("element %d: %g, PackPanels %g", i, got[i], want[i])
		}
	}
}

// TestBatchTrim steps two Batches through the same tokens, one trimmed
// between every step: the logits are identical, bit for bit (the same
// kernels on the same values, the scratch and workspaces made again).
func TestBatchTrim(t *testing.T) {
	ck, err := model.Default()
	if err != nil {
		t.Fatal(err)
	}
	w := ck.Weights
	ad := newLowRank(w, 4, 7).fused(false)
	var logits [2][][]float32
	for i, trim := range []bool{false, true} {
		b, err := NewBatch(w)
		if err != nil {
			t.Fatal(err)
		}
		var rows []BatchRow
		for r := range 5 {
			s, err := b.NewSequence(20)
			if err != nil {
				t.Fatal(err)
			}
			rows = append(rows, BatchRow{Seq: s, Tokens: []int{1, 5 + r, 9, 20 + r}, Adapter: ad, Logits: make([]float32, w.Config.VocabSize)})
		}
		for step := range 4 {
			if err := b.Step(rows); err != nil {
				t.Fatal(err)
			}
			for r := range rows {
				logits[i] = append(logits[i], append([]float32(nil), rows[r].Logits...))
				rows[r].Tokens = []int{30 + step + r}
			}
			if trim {
				b.Trim()
				for k, ws := range b.team.ws {
					if ws != nil {
						t.Fatalf("workspace %d kept after Trim", k)
					}
				}
			}
		}
	}
	for k := range logits[0] {
		for j, v := range logits[0][k] {
			if logits[1][k][j] != v {
				t.Fatalf("logits %d [%d]: %g after Trim, %g without", k, j, logits[1][k][j], v)
			}
		}
	}
}
