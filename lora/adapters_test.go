package lora

import (
	"slices"
	"strings"
	"testing"
)

func TestSetRegistry(t *testing.T) {
	base := testBase(t, tinyConfig(), 1, nil)
	first := mustNew(t, base, DefaultConfig(), 1)
	second := mustNew(t, base, allLinearConfig(), 2)
	randomize(first, 3)
	randomize(second, 4)
	set := NewSet(base)
	if name, a := set.Active(); name != "" || a != nil {
		t.Errorf("empty set has active %q", name)
	}
	if err := set.Add("first", first); err != nil {
		t.Fatal(err)
	}
	if err := set.Add("second", second); err != nil {
		t.Fatal(err)
	}
	if err := set.Add("first", second); err == nil {
		t.Error("duplicate name accepted")
	}
	if err := set.Add("", second); err == nil {
		t.Error("empty name accepted")
	}
	if name, a := set.Active(); name != "first" || a != first {
		t.Errorf("active %q, want the first added", name)
	}
	if !slices.Equal(set.Names(), []string{"first", "second"}) {
		t.Errorf("names %q", set.Names())
	}

	lin := base.Layers[0].O // targeted by second only
	x := make([]float32, lin.In)
	for i := range x {
		x[i] = float32(i%5) - 2
	}
	delta := func() []float32 {
		y := make([]float32, lin.Out)
		if err := set.AddDelta(lin, y, x, 1); err != nil {
			t.Fatal(err)
		}
		return y
	}
	if !allZero(delta()) {
		t.Error("first adapter changed o_proj, which it does not target")
	}
	if err := set.SetActive("second"); err != nil {
		t.Fatal(err)
	}
	want := make([]float32, lin.Out)
	if err := second.AddDelta(lin, want, x, 1); err != nil {
		t.Fatal(err)
	}
	if allZero(want) || !slices.Equal(delta(), want) {
		t.Error("active second adapter not applied")
	}
	if err := set.SetActive("third"); err == nil || !strings.Contains(err.Error(), "third") {
		t.Errorf("SetActive of an unknown name: err %v", err)
	}

	// A merged adapter is already in the weights: the hook must skip it.
	if err := Merge(base, second); err != nil {
		t.Fatal(err)
	}
	if !allZero(delta()) {
		t.Error("merged adapter applied twice")
	}
	if err := set.Delete("second"); err == nil {
		t.Error("deleted a merged adapter")
	}
	if err := Unmerge(base, second); err != nil {
		t.Fatal(err)
	}

	set.Disable()
	if name, _ := set.Active(); name != "" || !allZero(delta()) {
		t.Errorf("disabled set still applies %q", name)
	}
	if err := set.SetActive("second"); err != nil {
		t.Fatal(err)
	}
	if err := set.Delete("second"); err != nil {
		t.Fatal(err)
	}
	if name, _ := set.Active(); name != "" {
		t.Errorf("deleting the active adapter left %q active", name)
	}
	if _, ok := set.Get("second"); ok || set.Delete("second") == nil {
		t.Error("deleted adapter still present")
	}
	if !slices.Equal(set.Names(), []string{"first"}) {
		t.Errorf("names %q", set.Names())
	}
}

func TestSetAddChecksShapes(t *testing.T) {
	a := mustNew(t, testBase(t, tinyConfig(), 1, nil), DefaultConfig(), 1)
	other := tinyConfig()
	other.Dim = 24
	set := NewSet(testBase(t, other, 1, nil))
	if err := set.Add("x", a); err == nil || !strings.Contains(err.Error(), "q_proj") {
		t.Errorf("err %v", err)
	}
	if len(set.Names()) != 0 {
		t.Error("refused adapter was added")
	}
}
