package serve

import (
	"fmt"
	"slices"
	"sync"

	"github.com/golora/golora/internal/half"
	"github.com/golora/golora/internal/kernels"
	"github.com/golora/golora/lora"
	"github.com/golora/golora/model"
	"github.com/golora/golora/model/infer"
)

// Precision is how a cached adapter holds its A and B matrices.
type Precision int

// The precisions an adapter can be held in. Half precision halves the bytes
// a cached adapter takes and the bytes a decode step reads from it; the
// products are still accumulated in float32.
const (
	Float32 Precision = iota // as loaded, exact
	Float16                  // IEEE binary16: 11 significant bits, ample range for LoRA weights
)

// String returns "f32" or "f16".
func (p Precision) String() string {
	if p == Float16 {
		return "f16"
	}
	return "f32"
}

// ParsePrecision returns the Precision whose String is s: "f32" or "f16".
func ParsePrecision(s string) (Precision, error) {
	switch s {
	case "f32":
		return Float32, nil
	case "f16":
		return Float16, nil
	}
	return Float32, fmt.Errorf("serve: precision %q: want f32 or f16", s)
}

// Adapter is a LoRA adapter prepared for serving: its pairs resolved to the
// base's linear layers and held in the store's precision. It implements
// infer.Adapter and is safe for concurrent use (it is never modified).
type Adapter struct {
	name    string
	version string // from a VersionedSource
	terms   map[*model.Linear]*term
	bytes   int64
}

// term is one linear layer's y += scaling·(x·Aᵀ)·Bᵀ. B is held transposed,
// Bᵀ [r, out], so that the expand adds r long rows (internal/kernels'
// low-rank kernels, vectorized whatever the rank).
type term struct {
	in, out, r int
	scaling    float32
	a, bt      []float32 // A [r, in] and Bᵀ [r, out], when held in float32
	a16, bt16  []uint16  // the same in binary16
}

// prepare resolves the pairs of a (already checked against base) to base's
// linear layers.
func prepare(name string, a *lora.Adapter, base *model.Weights, prec Precision) (*Adapter, error) {
	byName := make(map[string]*model.Linear)
	for _, lin := range append(base.Linears(), base.Output) {
		if lin != nil {
			byName[lin.Name] = lin
		}
	}
	ad := &Adapter{name: name, terms: make(map[*model.Linear]*term)}
	for _, module := range a.Modules() {
		p, _ := a.Pair(module)
		lin, ok := byName[module]
		if !ok {
			return nil, fmt.Errorf("serve: adapter %q: module %q is not a linear layer of the base", name, module)
		}
		t := &term{in: p.In, out: p.Out, r: p.R, scaling: float32(p.Scaling())}
		bt := transpose(p.B, p.Out, p.R)
		switch prec {
		case Float16:
			t.a16, t.bt16 = toF16(p.A), toF16(bt)
			ad.bytes += 2 * int64(len(p.A)+len(bt))
		default:
			// A copy: p.A may share its memory with the rest of the file read
			// (B included), which must not stay alive with the cache.
			t.a, t.bt = slices.Clone(p.A), bt
			ad.bytes += 4 * int64(len(p.A)+len(bt))
		}
		ad.terms[lin] = t
	}
	return ad, nil
}

// transpose returns the [cols, rows] transpose of m [rows, cols].
func transpose(m []float32, rows, cols int) []float32 {
	t := make([]float32, len(m))
	for i := range rows {
		for j := range cols {
			t[j*rows+i] = m[i*cols+j]
		}
	}
	return t
}

func toF16(v []float32) []uint16 {
	h := make([]uint16, len(v))
	for i, f := range v {
		h[i] = half.Float32ToF16(f)
	}
	return h
}

// Name returns the name the adapter was loaded under.
func (a *Adapter) Name() string { return a.name }

// Version returns the version a VersionedSource reported for the adapter,
// empty for other sources.
func (a *Adapter) Version() string { return a.version }

// Bytes returns the memory its matrices take.
func (a *Adapter) Bytes() int64 { return a.bytes }

// maxStackRank is the largest rank AddDelta keeps its scratch on the stack
// for.
const maxStackRank = 64

// AddDelta adds scaling·(x·Aᵀ)·Bᵀ to the n rows of y, row by row: the
// shrink s = scaling·A·x then the expand y += Bᵀᵀ·s (internal/kernels'
// low-rank kernels, AVX-512 where the CPU has it, converting half-precision
// matrices as they are read). The rows are one group of a batch sharing this
// adapter: A and Bᵀ come from memory once for the group, from the caches for
// its other rows.
func (a *Adapter) AddDelta(lin *model.Linear, y, x []float32, n int) error {
	t := a.terms[lin]
	if t == nil || n == 0 {
		return nil
	}
	if lin.In != t.in || lin.Out != t.out || len(x) < n*t.in || len(y) < n*t.out {
		return fmt.Errorf("serve: adapter %q at %s: shapes disagree (layer [%d %d], pair [%d %d], %d rows, x %d, y %d)",
			a.name, lin.Name, lin.Out, lin.In, t.out, t.in, n, len(x), len(y))
	}
	var stack [maxStackRank]float32
	s := stack[:0]
	if t.r > len(stack) {
		s = make([]float32, t.r)
	}
	s = s[:t.r]
	a32, bt32 := t.a, t.bt
	if t.a16 != nil && n > 1 {
		// A group converts the matrices once, not once per row.
		buf := expanded.Get().(*[]float32)
		defer expanded.Put(buf)
		need := t.r * (t.in + t.out)
		if cap(*buf) < need {
			*buf = make([]float32, need)
		}
		a32, bt32 = (*buf)[:t.r*t.in], (*buf)[t.r*t.in:need]
		kernels.F16ToFloat32s(a32, t.a16)
		kernels.F16ToFloat32s(bt32, t.bt16)
	}
	for i := range n {
		xi, yi := x[i*t.in:(i+1)*t.in], y[i*t.out:(i+1)*t.out]
		if a32 == nil {
			kernels.LowRankShrinkF16(s, xi, t.a16, t.r, t.in, t.scaling)
			kernels.LowRankExpandF16(yi, s, t.bt16, t.r, t.out)
		} else {
			kernels.LowRankShrink(s, xi, a32, t.r, t.in, t.scaling)
			kernels.LowRankExpand(yi, s, bt32, t.r, t.out)
		}
	}
	return nil
}

// expanded holds float32 copies of half-precision matrices for AddDelta's
// groups of rows.
var expanded = sync.Pool{New: func() any { return new([]float32) }}

var _ infer.Adapter = (*Adapter)(nil)
