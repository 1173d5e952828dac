package model

import (
	"slices"
	"testing"
)

// TestPrefaultDense: the slots of at least the given size move to the end in
// their order, each with a zeroed buffer of its size; the others keep their
// order; populating the buffers (and stopping half way) changes nothing.
func TestPrefaultDense(t *testing.T) {
	sizes := []int{5, 100, 0, 3, 250, 99, 100}
	got, dense := prefaultDense(sizes, 100, func(n int) int { return n })
	if want := []int{5, 0, 3, 99, 100, 250, 100}; !slices.Equal(got, want) {
		t.Fatalf("order %v, want %v", got, want)
	}
	if len(dense) != 3 {
		t.Fatalf("%d buffers, want 3", len(dense))
	}
	for i, b := range dense {
		if n := got[len(got)-len(dense)+i]; len(b) != n {
			t.Errorf("buffer %d has %d elements, want %d", i, len(b), n)
		}
		b[len(b)-1] = float32(i + 1)
	}
	populateAll(dense)()
	populateAll(nil)()
	for i, b := range dense {
		for j, v := range b[:len(b)-1] {
			if v != 0 {
				t.Fatalf("buffer %d [%d] = %v after populating, want 0", i, j, v)
			}
		}
		if b[len(b)-1] != float32(i+1) {
			t.Errorf("buffer %d lost its last value", i)
		}
	}
}
