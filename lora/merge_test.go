package lora

import (
	"context"
	"math"
	"slices"
	"strings"
	"testing"

	"github.com/golora/golora/internal/testmodel"
	"github.com/golora/golora/model"
)

// snapshot copies the dense weights of every linear of w.
func snapshot(w *model.Weights) map[string][]float32 {
	s := make(map[string][]float32)
	for i := range w.Layers {
		l := &w.Layers[i]
		for _, lin := range []*model.Linear{l.Q, l.K, l.V, l.O, l.Gate, l.Up, l.Down} {
			s[lin.Name] = slices.Clone(lin.Dense)
		}
	}
	s[w.Output.Name] = slices.Clone(w.Output.Dense)
	return s
}

func allLinearConfig() Config {
	c := DefaultConfig()
	c.R, c.Alpha = 4, 12
	c.TargetModules = ModuleRegex(AllLinear)
	return c
}

func TestMergeUnmergeRestoresBits(t *testing.T) {
	base := testBase(t, tinyConfig(), 1, nil)
	before := snapshot(base)
	a := mustNew(t, base, allLinearConfig(), 3)
	randomize(a, 4)
	if err := Merge(base, a); err != nil {
		t.Fatal(err)
	}
	if !a.Merged(base) {
		t.Error("Merged reports false after Merge")
	}
	changed := 0
	for name, w := range snapshot(base) {
		if !testmodel.SameBits(w, before[name]) {
			changed++
		}
	}
	if changed != 21 {
		t.Errorf("Merge changed %d weights, want the 21 targeted ones", changed)
	}
	if err := Merge(base, a); err == nil {
		t.Error("second Merge accepted")
	}
	if err := Unmerge(base, a); err != nil {
		t.Fatal(err)
	}
	for name, w := range snapshot(base) {
		if !testmodel.SameBits(w, before[name]) {
			t.Errorf("%s: weights differ from the original bits after Unmerge", name)
		}
	}
	if a.Merged(base) || Unmerge(base, a) == nil {
		t.Error("adapter still merged after Unmerge")
	}
}

// TestMergeMatchesFloat64 checks each merged weight against W + s·B·A
// computed independently here in float64: the merge rounds once, so the
// result must be the float64 value rounded to float32.
func TestMergeMatchesFloat64(t *testing.T) {
	base := testBase(t, tinyConfig(), 1, nil)
	a := mustNew(t, base, allLinearConfig(), 3)
	randomize(a, 4)
	before := snapshot(base)
	if err := Merge(base, a); err != nil {
		t.Fatal(err)
	}
	lin := base.Layers[1].Down
	p, _ := a.Pair(lin.Name)
	for o := range lin.Out {
		for i := range lin.In {
			var d float64
			for k := range p.R {
				d += float64(p.B[o*p.R+k]) * float64(p.A[k*p.In+i])
			}
			want := float32(float64(before[lin.Name][o*lin.In+i]) + 3*d) // scaling 12/4
			if got := lin.Dense[o*lin.In+i]; got != want {
				t.Fatalf("W'[%d,%d] = %v, want %v", o, i, got, want)
			}
		}
	}
}

func TestUnmergeRefusesChangedWeights(t *testing.T) {
	base := testBase(t, tinyConfig(), 1, nil)
	a := mustNew(t, base, allLinearConfig(), 3)
	b := mustNew(t, base, allLinearConfig(), 5)
	randomize(a, 4)
	randomize(b, 6)
	before := snapshot(base)
	if err := Merge(base, a); err != nil {
		t.Fatal(err)
	}
	if err := Merge(base, b); err != nil {
		t.Fatal(err)
	}
	if err := Unmerge(base, a); err == nil || !strings.Contains(err.Error(), "changed after Merge") {
		t.Fatalf("unmerging the first of two merged adapters: err %v", err)
	}
	if err := Unmerge(base, b); err != nil {
		t.Fatal(err)
	}
	if err := Unmerge(base, a); err != nil {
		t.Fatal(err)
	}
	for name, w := range snapshot(base) {
		if !testmodel.SameBits(w, before[name]) {
			t.Errorf("%s: not restored after unmerging in reverse order", name)
		}
	}
}

// fakeQuantized is a quant.Matrix holding a dense matrix, so that MergedDense
// can be tested without depending on a real quantizer.
type fakeQuantized struct {
	rows, cols int
	w          []float32
}

func (f *fakeQuantized) Dims() (int, int) { return f.rows, f.cols }
func (f *fakeQuantized) DequantizeRows(dst []float32, start, end int) error {
	copy(dst, f.w[start*f.cols:end*f.cols])
	return nil
}
func (f *fakeQuantized) MulT(y, x []float32, n int) error {
	for r := range n {
		for o := range f.rows {
			var s float32
			for i := range f.cols {
				s += x[r*f.cols+i] * f.w[o*f.cols+i]
			}
			y[r*f.rows+o] = s
		}
	}
	return nil
}
func (f *fakeQuantized) StorageBytes() int64   { return int64(4 * len(f.w)) }
func (f *fakeQuantized) BitsPerParam() float64 { return 32 }
func (f *fakeQuantized) Format() string        { return "fake" }

func TestMergedDenseOfQuantizedBase(t *testing.T) {
	dense := testBase(t, tinyConfig(), 1, nil)
	quantized := testBase(t, tinyConfig(), 1, nil)
	for i := range quantized.Layers {
		l := &quantized.Layers[i]
		for _, lin := range []*model.Linear{l.Q, l.K, l.V, l.O, l.Gate, l.Up, l.Down} {
			lin.Quantized = &fakeQuantized{lin.Out, lin.In, lin.Dense}
			lin.Dense = nil
		}
	}
	a := mustNew(t, dense, allLinearConfig(), 3)
	randomize(a, 4)
	if err := Merge(quantized, a); err == nil || !strings.Contains(err.Error(), "MergedDense") {
		t.Errorf("Merge into a quantized base: err %v", err)
	}
	merged, err := MergedDense(quantized, a)
	if err != nil {
		t.Fatal(err)
	}
	if err := Merge(dense, a); err != nil {
		t.Fatal(err)
	}
	mergedWeights := snapshot(merged)
	for name, w := range snapshot(dense) {
		got := mergedWeights[name]
		if !testmodel.SameBits(got, w) {
			t.Errorf("%s: MergedDense differs from Merge on the same weights", name)
		}
	}
	if merged.Layers[0].Q.Quantized != nil || &merged.Embedding[0] == &quantized.Embedding[0] {
		t.Error("MergedDense result is not an independent dense copy")
	}
	for i := range quantized.Layers {
		if quantized.Layers[i].Q.Dense != nil {
			t.Error("MergedDense modified the quantized base")
		}
	}
}

// TestAddDeltaMatchesMerge checks the plain-Go inference hook against a
// merged weight: x·W'ᵀ must equal x·Wᵀ + AddDelta within float32 rounding.
// The bound is the standard one for float32 dot products of length n:
// |error| ≤ 2·n·ε·Σ|x_i|(|W_i| + |ΔW_i|) with ε = 2⁻²⁴, doubled for the two
// computations compared.
func TestAddDeltaMatchesMerge(t *testing.T) {
	base := testBase(t, tinyConfig(), 1, nil)
	a := mustNew(t, base, allLinearConfig(), 3)
	randomize(a, 4)
	const n = 5
	orig := snapshot(base)
	xs := make(map[string][]float32)
	ys := make(map[string][]float32)
	lins := []*model.Linear{}
	for i := range base.Layers {
		l := &base.Layers[i]
		lins = append(lins, l.Q, l.K, l.V, l.O, l.Gate, l.Up, l.Down)
	}
	for j, lin := range lins {
		x := make([]float32, n*lin.In)
		for i := range x {
			x[i] = float32(math.Sin(float64(3*i+j))) * 2
		}
		y := matMulT(x, lin.Dense, n, lin.In, lin.Out)
		if err := a.AddDelta(lin, y, x, n); err != nil {
			t.Fatal(err)
		}
		xs[lin.Name], ys[lin.Name] = x, y
	}
	if err := Merge(base, a); err != nil {
		t.Fatal(err)
	}
	eps := math.Pow(2, -24)
	for _, lin := range lins {
		p, _ := a.Pair(lin.Name)
		x := xs[lin.Name]
		want := matMulT(x, lin.Dense, n, lin.In, lin.Out)
		for r := range n {
			for o := range lin.Out {
				var mag float64
				for i := range lin.In {
					w0 := float64(orig[lin.Name][o*lin.In+i])
					mag += math.Abs(float64(x[r*lin.In+i])) * (math.Abs(w0) + math.Abs(float64(lin.Dense[o*lin.In+i])-w0))
				}
				tol := 4 * float64(lin.In+p.R) * eps * mag
				if d := math.Abs(float64(ys[lin.Name][r*lin.Out+o] - want[r*lin.Out+o])); d > tol {
					t.Fatalf("%s row %d out %d: base+delta %v, merged %v, |diff| %g > %g",
						lin.Name, r, o, ys[lin.Name][r*lin.Out+o], want[r*lin.Out+o], d, tol)
				}
			}
		}
	}
}

// matMulT computes x·Wᵀ in float32 for n rows.
func matMulT(x, w []float32, n, in, out int) []float32 {
	y := make([]float32, n*out)
	for r := range n {
		for o := range out {
			var s float32
			for i := range in {
				s += x[r*in+i] * w[o*in+i]
			}
			y[r*out+o] = s
		}
	}
	return y
}

// TestMergedDenseOfGGUFBlocks: MergedDense of a GGUF base whose embedding
// and tied head stay Q8_0 (ggml blocks) gives the dequantized embedding in
// float32, with the head sharing it as before.
func TestMergedDenseOfGGUFBlocks(t *testing.T) {
	b, err := model.Load(context.Background(), "../quant/ggml/testdata/stories260K.q8_0.llama.gguf", model.LoadOptions{WeightsOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	base := b.Weights
	if base.EmbeddingMatrix == nil || base.Output.Quantized != base.EmbeddingMatrix {
		t.Fatalf("loaded embedding %T, head %T: want one block matrix", base.EmbeddingMatrix, base.Output.Quantized)
	}
	a := mustNew(t, base, allLinearConfig(), 3)
	randomize(a, 4)
	merged, err := MergedDense(base, a)
	if err != nil {
		t.Fatal(err)
	}
	emb, err := base.EmbeddingFloat32()
	if err != nil {
		t.Fatal(err)
	}
	if !testmodel.SameBits(merged.Embedding, emb) {
		t.Error("merged embedding is not the dequantized Q8_0 embedding")
	}
	if err := merged.Validate(); err != nil {
		t.Fatal(err)
	}
	if &merged.Output.Dense[0] != &merged.Embedding[0] {
		t.Error("merged head does not share the merged embedding")
	}
}
