package serve

import (
	"fmt"

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

// Adapter is a LoRA adapter prepared for serving: its pairs resolved to the
// base's linear layers and held in the store's precision. It implements
// infer.Adapter and is safe for concurrent use (it is never modified).
type Adapter struct {
	name    string
	version string // from a VersionedSource
	terms   map[*model.Linear]*term
	bytes   int64
}

// term is one linear layer's y += scaling·(x·Aᵀ)·Bᵀ.
type term struct {
	in, out, r int
	scaling    float32
	a, b       []float32 // [r, in] and [out, r], when held in float32
	a16, b16   []uint16  // the same in binary16
}

// prepare resolves the pairs of a (already checked against base) to base's
// linear layers.
func prepare(name string, a *lora.Adapter, base *model.Weights, prec Precision) (*Adapter, error) {
	byName := make(map[string]*model.Linear)
	for i := range base.Layers {
		l := &base.Layers[i]
		for _, lin := range []*model.Linear{l.Q, l.K, l.V, l.O, l.Gate, l.Up, l.Down} {
			byName[lin.Name] = lin
		}
	}
	if base.Output != nil {
		byName[base.Output.Name] = base.Output
	}
	ad := &Adapter{name: name, terms: make(map[*model.Linear]*term)}
	for _, module := range a.Modules() {
		p, _ := a.Pair(module)
		lin, ok := byName[module]
		if !ok {
			return nil, fmt.Errorf("serve: adapter %q: module %q is not a linear layer of the base", name, module)
		}
		t := &term{in: p.In, out: p.Out, r: p.R, scaling: float32(p.Scaling())}
		switch prec {
		case Float16:
			t.a16, t.b16 = toF16(p.A), toF16(p.B)
			ad.bytes += 2 * int64(len(p.A)+len(p.B))
		default:
			t.a, t.b = p.A, p.B
			ad.bytes += 4 * int64(len(p.A)+len(p.B))
		}
		ad.terms[lin] = t
	}
	return ad, nil
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

// groupScratch is the scratch AddDelta keeps on the stack: rows × rank values,
// enough for a 32-row group of rank 16.
const groupScratch = 512

// AddDelta adds scaling·(x·Aᵀ)·Bᵀ to the n rows of y. The rows are one group
// of a batch sharing this adapter: A and B are each read once for the whole
// group (shrink: every row against row k of A; expand: every row against row
// o of B), so a group costs one pass over the adapter whatever its size.
func (a *Adapter) AddDelta(lin *model.Linear, y, x []float32, n int) error {
	t := a.terms[lin]
	if t == nil || n == 0 {
		return nil
	}
	if lin.In != t.in || lin.Out != t.out || len(x) < n*t.in || len(y) < n*t.out {
		return fmt.Errorf("serve: adapter %q at %s: shapes disagree (layer [%d %d], pair [%d %d], %d rows, x %d, y %d)",
			a.name, lin.Name, lin.Out, lin.In, t.out, t.in, n, len(x), len(y))
	}
	var stack [groupScratch]float32
	s := stack[:0]
	if n*t.r > len(stack) {
		s = make([]float32, n*t.r)
	}
	s = s[:n*t.r] // s[row*r+k] = scaling·x_row·A_k
	var row16 []float32
	if t.a16 != nil {
		var buf [1024]float32
		row16 = buf[:]
		if w := max(t.in, t.r); w > len(buf) {
			row16 = make([]float32, w)
		}
	}
	for k := range t.r {
		ak := t.rowA(k, row16)
		for i := range n {
			s[i*t.r+k] = t.scaling * kernels.Dot(x[i*t.in:(i+1)*t.in], ak)
		}
	}
	if t.b != nil && t.r == 8 {
		// The usual rank, unrolled: a call per output element would cost
		// more than its eight multiply-adds.
		for i := range n {
			si := s[i*8 : i*8+8 : i*8+8]
			yr := y[i*t.out : (i+1)*t.out]
			for o := range yr {
				b := t.b[o*8 : o*8+8 : o*8+8]
				yr[o] += (si[0]*b[0] + si[1]*b[1]) + (si[2]*b[2] + si[3]*b[3]) + (si[4]*b[4] + si[5]*b[5]) + (si[6]*b[6] + si[7]*b[7])
			}
		}
		return nil
	}
	for o := range t.out {
		bo := t.rowB(o, row16)
		for i := range n {
			y[i*t.out+o] += kernels.Dot(s[i*t.r:(i+1)*t.r], bo)
		}
	}
	return nil
}

// rowA returns row k of A as float32, converting into buf when held in half
// precision.
func (t *term) rowA(k int, buf []float32) []float32 {
	if t.a16 == nil {
		return t.a[k*t.in : (k+1)*t.in]
	}
	buf = buf[:t.in]
	for i, h := range t.a16[k*t.in : (k+1)*t.in] {
		buf[i] = half.F16ToFloat32(h)
	}
	return buf
}

// rowB is rowA for row o of B.
func (t *term) rowB(o int, buf []float32) []float32 {
	if t.b16 == nil {
		return t.b[o*t.r : (o+1)*t.r]
	}
	buf = buf[:t.r]
	for i, h := range t.b16[o*t.r : (o+1)*t.r] {
		buf[i] = half.F16ToFloat32(h)
	}
	return buf
}

var _ infer.Adapter = (*Adapter)(nil)
