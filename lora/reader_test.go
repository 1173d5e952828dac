package lora

import (
	"slices"
	"strings"
	"testing"

	"github.com/golora/golora/internal/testmodel"
)

// TestReaderReadsInParts: a Reader gives the shapes and scalings Load gives,
// reads each matrix in parts of any size with the values Load decodes,
// checks against the base as Check does, and refuses reads outside a matrix
// or of a module it does not hold.
func TestReaderReadsInParts(t *testing.T) {
	base := testBase(t, tinyConfig(), 1, nil)
	c := DefaultConfig()
	c.R, c.Alpha = 4, 6
	c.TargetModules = ModuleRegex(`.*\.(q|v|down)_proj`)
	c.RankPattern = []RankRule{{"down_proj", 2}}
	a := mustNew(t, base, c, 8)
	randomize(a, 9)
	dir := t.TempDir()
	if err := Save(dir, a); err != nil {
		t.Fatal(err)
	}
	want, err := Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	r, err := OpenReader(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if !slices.Equal(r.Modules(), want.Modules()) {
		t.Fatalf("modules %q, Load gives %q", r.Modules(), want.Modules())
	}
	if err := r.Check(base); err != nil {
		t.Fatalf("Check: %v", err)
	}
	for _, m := range r.Modules() {
		p, _ := want.Pair(m)
		in, out, rank, scaling, ok := r.Shape(m)
		if !ok || in != p.In || out != p.Out || rank != p.R || scaling != p.Scaling() {
			t.Fatalf("%s: shape %d %d %d %g, Load gives %d %d %d %g", m, in, out, rank, scaling, p.In, p.Out, p.R, p.Scaling())
		}
		for _, part := range []int{1, 7, len(p.A)} {
			got := make([]float32, len(p.A))
			for off := 0; off < len(got); off += part {
				if err := r.ReadA(m, got[off:min(off+part, len(got))], off); err != nil {
					t.Fatal(err)
				}
			}
			if !testmodel.SameBits(got, p.A) {
				t.Fatalf("%s: A read in parts of %d differs from Load's", m, part)
			}
		}
		got := make([]float32, len(p.B))
		for off := 0; off < len(got); off += 5 {
			if err := r.ReadB(m, got[off:min(off+5, len(got))], off); err != nil {
				t.Fatal(err)
			}
		}
		if !testmodel.SameBits(got, p.B) {
			t.Fatalf("%s: B read in parts differs from Load's", m)
		}
		if err := r.ReadA(m, make([]float32, 2), len(p.A)-1); err == nil || !strings.Contains(err.Error(), "elements") {
			t.Errorf("%s: a read past the end of A: %v", m, err)
		}
	}
	if err := r.ReadB("model.layers.0.mlp.up_proj", make([]float32, 1), 0); err == nil {
		t.Error("ReadB of a module the adapter does not hold succeeded")
	}
}
