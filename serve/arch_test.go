package serve

import (
	"context"
	"math"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"testing"
	"weak"

	"github.com/golora/golora/model"
)

// TestBatchedModelRunsQwen2: the batched model serves architectures beyond
// Llama 2 (here Qwen2's q/k/v biases): three rows, one with an adapter,
// prefilled and decoded together give the logits PerRowModel gives.
func TestBatchedModelRunsQwen2(t *testing.T) {
	base, err := model.Load(context.Background(), filepath.Join("..", "model", "testdata", "arch", "qwen2"), model.LoadOptions{WeightsOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	w := base.Weights
	store := NewStore(mapSource{"a": newAdapter(t, w, 4, 7)}, w, StoreOptions{})
	h, err := store.Acquire(context.Background(), "a")
	if err != nil {
		t.Fatal(err)
	}
	defer h.Release()
	batched, err := NewBatchedModel(w)
	if err != nil {
		t.Fatal(err)
	}
	models := []Model{batched, NewPerRowModel(w, 0)}
	prompts := [][]int{{1, 5, 9, 2}, {1, 7}, {1, 3, 3, 8, 20, 11}}
	logits := make([][][]float32, len(models))
	for mi, m := range models {
		var rows []Row
		for i, p := range prompts {
			s, err := m.NewSequence(16)
			if err != nil {
				t.Fatal(err)
			}
			r := Row{Seq: s, Tokens: p, Logits: make([]float32, w.Config.VocabSize)}
			if i == 1 {
				r.Adapter = h.Adapter()
			}
			rows = append(rows, r)
		}
		for step := range 3 {
			if err := m.Step(rows); err != nil {
				t.Fatal(err)
			}
			for i := range rows {
				logits[mi] = append(logits[mi], append([]float32(nil), rows[i].Logits...))
				rows[i].Tokens = []int{(step*7 + i*3) % w.Config.VocabSize}
			}
		}
	}
	for i, want := range logits[1] {
		for j, v := range want {
			if d := math.Abs(float64(v - logits[0][i][j])); d > 1e-4*max(1, math.Abs(float64(v))) {
				t.Fatalf("row/step %d logit %d: batched %g, per row %g", i, j, logits[0][i][j], v)
			}
		}
	}
}

// TestBatchedModelReusesClosedSequences: a cache given back with Close is
// handed to the next request of a close length, emptied: its logits are
// those of a fresh model's; Trim drops the kept caches, and so does a
// garbage collection (they are held weakly).
func TestBatchedModelReusesClosedSequences(t *testing.T) {
	// No collection between a Close and the next NewSequence, but the
	// one the test runs.
	defer debug.SetGCPercent(debug.SetGCPercent(-1))
	w := embedded(t).Weights
	m, err := NewBatchedModel(w)
	if err != nil {
		t.Fatal(err)
	}
	run := func(m *BatchedModel, maxLen int, tokens []int) (Sequence, []float32) {
		s, err := m.NewSequence(maxLen)
		if err != nil {
			t.Fatal(err)
		}
		logits := make([]float32, w.Config.VocabSize)
		if err := m.Step([]Row{{Seq: s, Tokens: tokens, Logits: logits}}); err != nil {
			t.Fatal(err)
		}
		return s, logits
	}
	first, _ := run(m, 20, []int{1, 50, 60, 70, 80, 90})
	inner := first.(*batchSeq).Sequence
	first.Close()
	second, got := run(m, 30, []int{1, 7, 8})
	if second.(*batchSeq).Sequence != inner {
		t.Fatal("the closed cache was not reused")
	}
	fresh, err := NewBatchedModel(w)
	if err != nil {
		t.Fatal(err)
	}
	_, want := run(fresh, 30, []int{1, 7, 8})
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("logit %d: reused cache %g, fresh %g", i, got[i], want[i])
		}
	}
	second.Close()
	m.Trim()
	third, _ := run(m, 30, []int{1})
	if third.(*batchSeq).Sequence == inner {
		t.Fatal("Trim kept the closed cache")
	}
	kept := weak.Make(third.(*batchSeq).Sequence)
	third.Close()
	runtime.GC()
	if kept.Value() != nil {
		t.Fatal("a garbage collection kept the closed cache")
	}
}
