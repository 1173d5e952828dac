package infer

import (
	"errors"
	"testing"

	"github.com/golora/golora/model"
)

// TestSequenceFree: a freed sequence is refused by Step (ErrSequenceFreed)
// rather than read, the other rows' sequences are untouched by the refused
// step, and Free twice is harmless.
func TestSequenceFree(t *testing.T) {
	ck, err := model.Default()
	if err != nil {
		t.Fatal(err)
	}
	w := ck.Weights
	b, err := NewBatch(w)
	if err != nil {
		t.Fatal(err)
	}
	s1, err := b.NewSequence(8)
	if err != nil {
		t.Fatal(err)
	}
	s2, err := b.NewSequence(8)
	if err != nil {
		t.Fatal(err)
	}
	logits := make([]float32, w.Config.VocabSize)
	if err := b.Step([]BatchRow{{Seq: s1, Tokens: []int{1, 2}}, {Seq: s2, Tokens: []int{1}, Logits: logits}}); err != nil {
		t.Fatal(err)
	}
	s1.Free()
	s1.Free()
	err = b.Step([]BatchRow{{Seq: s2, Tokens: []int{3}}, {Seq: s1, Tokens: []int{3}}})
	if !errors.Is(err, ErrSequenceFreed) {
		t.Fatalf("Step on a freed sequence: %v, want ErrSequenceFreed", err)
	}
	if s2.Pos() != 1 {
		t.Fatalf("the refused step moved the other sequence to %d", s2.Pos())
	}
	if err := b.Step([]BatchRow{{Seq: s2, Tokens: []int{3}, Logits: logits}}); err != nil {
		t.Fatalf("the other sequence after the refusal: %v", err)
	}
}
