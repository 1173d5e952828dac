package gguf

import (
	"slices"
	"testing"
)

func TestCompareTensorNames(t *testing.T) {
	names := []string{"blk.10.ffn_up.weight", "output.weight", "blk.2.attn_q.weight", "blk.x.weight",
		"blk.2.attn_k.weight", "blk.3", "token_embd.weight", "blk.0.attn_norm.weight"}
	slices.SortStableFunc(names, CompareTensorNames)
	// Names that are not "blk.N.…" sort first, by name, as llama-quantize
	// writes them; blocks follow by number, not by text ("blk.10" after "blk.2").
	want := []string{"blk.3", "blk.x.weight", "output.weight", "token_embd.weight",
		"blk.0.attn_norm.weight", "blk.2.attn_k.weight", "blk.2.attn_q.weight", "blk.10.ffn_up.weight"}
	if !slices.Equal(names, want) {
		t.Errorf("sorted %q, want %q", names, want)
	}
}
