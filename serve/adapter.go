package serve

import (
	"errors"
	"fmt"
	"math"
	"runtime"
	"slices"
	"sync"

	"github.com/golora/golora/internal/half"
	"github.com/golora/golora/internal/hugemem"
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
//
// Its matrices live outside the Go heap (a hugemem.Arena), so that a cache of
// many adapters does not raise the garbage collector's heap goal, in the
// huge pages its Store's adapters share (a hugemem.Pool): a decode step
// whose rows use many adapters reads one page of the TLB per 2 MiB of them
// instead of one per 4 KiB. The Store frees them, back to the pool, when the
// adapter has left the cache and its last Handle is released. An Adapter
// used after that refuses with ErrReleased.
type Adapter struct {
	name    string
	version string // from a VersionedSource
	// lins are the layers the adapter has a term for, and terms[i] is
	// lins[i]'s: a contiguous array that a scan reads with loads that do
	// not wait on each other (a map's lookup waits on its control word,
	// then its slot, each a cache miss in a mixed batch).
	lins  []*model.Linear
	terms []term
	bytes int64
	mem   *hugemem.Arena // the matrices of terms
	// ownMem is whether mem is a mapping of its own, not a range of the
	// store's pool, which had no room for it.
	ownMem bool
}

// ErrReleased is the error of an Adapter used after its memory was returned:
// its Handle was released and the adapter had left the cache.
var ErrReleased = errors.New("serve: adapter used after its memory was released")

// term is one linear layer's y += Scale·(x·Aᵀ)·Bᵀ. B is held transposed,
// Bᵀ [r, out], so that the expand adds r long rows (internal/kernels'
// low-rank kernels, vectorized whatever the rank).
type term struct {
	in, out int
	// The matrices, A [r, in] and Bᵀ [r, out], in float32 (A, BT) or
	// binary16 (A16, BT16), as an infer.Batch runs them (LowRank).
	infer.LowRank
}

// pairReader is what prepare builds an adapter from: the shapes of its pairs
// and their values, decoded into memory prepare gives, a part at a time.
type pairReader interface {
	pairs() []pairShape
	// readA decodes elements [off, off+len(dst)) of the module's A
	// ([r, in], row-major); readB the same of B ([out, r]).
	readA(module string, dst []float32, off int) error
	readB(module string, dst []float32, off int) error
}

// pairShape is one pair's place in the adapter.
type pairShape struct {
	module     string
	in, out, r int
	scaling    float32
}

// loraPairs reads the pairs of a lora.Adapter already in memory.
type loraPairs struct{ a *lora.Adapter }

func (l loraPairs) pairs() []pairShape {
	var out []pairShape
	for _, m := range l.a.Modules() {
		p, _ := l.a.Pair(m)
		out = append(out, pairShape{module: m, in: p.In, out: p.Out, r: p.R, scaling: float32(p.Scaling())})
	}
	return out
}

func (l loraPairs) readA(module string, dst []float32, off int) error {
	p, _ := l.a.Pair(module)
	copy(dst, p.A[off:])
	return nil
}

func (l loraPairs) readB(module string, dst []float32, off int) error {
	p, _ := l.a.Pair(module)
	copy(dst, p.B[off:])
	return nil
}

// readerPairs reads the pairs of a PEFT file as they are needed.
type readerPairs struct{ r *lora.Reader }

func (l readerPairs) pairs() []pairShape {
	var out []pairShape
	for _, m := range l.r.Modules() {
		in, o, r, scaling, _ := l.r.Shape(m)
		out = append(out, pairShape{module: m, in: in, out: o, r: r, scaling: float32(scaling)})
	}
	return out
}

func (l readerPairs) readA(module string, dst []float32, off int) error {
	return l.r.ReadA(module, dst, off)
}

func (l readerPairs) readB(module string, dst []float32, off int) error {
	return l.r.ReadB(module, dst, off)
}

// chunk is the most values prepare decodes at a time into its scratch on
// the way to memory of another layout (Bᵀ) or precision (binary16).
const chunk = 2048

// prepare resolves the pairs src reads (already checked against base) to
// base's linear layers and decodes them into an arena of their exact size
// from pool (or of its own, when the pool is full):
// A straight into its place, B a chunk of rows at a time into Bᵀ, half
// precision a chunk at a time. Nothing of the size of a matrix is allocated
// on the Go heap.
func prepare(name string, src pairReader, base *model.Weights, prec Precision, pool *hugemem.Pool) (*Adapter, error) {
	return prepareChunked(name, src, base, prec, pool, make([]float32, chunk))
}

// prepareChunked is prepare decoding a len(buf) values at a time.
func prepareChunked(name string, src pairReader, base *model.Weights, prec Precision, pool *hugemem.Pool, buf []float32) (*Adapter, error) {
	byName := make(map[string]*model.Linear)
	for _, lin := range append(base.Linears(), base.Output) {
		if lin != nil {
			byName[lin.Name] = lin
		}
	}
	shapes := src.pairs()
	size := 0
	for _, p := range shapes {
		if _, ok := byName[p.module]; !ok {
			return nil, fmt.Errorf("serve: adapter %q: module %q is not a linear layer of the base", name, p.module)
		}
		if prec == Float16 {
			size += hugemem.Footprint[uint16](p.r*p.in) + hugemem.Footprint[uint16](p.r*p.out)
		} else {
			size += hugemem.Footprint[float32](p.r*p.in) + hugemem.Footprint[float32](p.r*p.out)
		}
	}
	mem, err := pool.NewArena(size)
	ownMem := errors.Is(err, hugemem.ErrPoolFull)
	if ownMem {
		// Free ranges too fragmented for this adapter: it still loads,
		// on small pages.
		mem, err = hugemem.NewArena(size)
	}
	if err != nil {
		return nil, fmt.Errorf("serve: adapter %q: %w", name, err)
	}
	ad := &Adapter{name: name, lins: make([]*model.Linear, 0, len(shapes)), terms: make([]term, 0, len(shapes)), mem: mem, bytes: adapterBytes(shapes, prec), ownMem: ownMem}
	if err := ad.fill(src, shapes, byName, prec, buf); err != nil {
		mem.Free()
		return nil, err
	}
	// The Store frees the memory when the adapter leaves it; an adapter
	// dropped some other way (a Store that is no longer used) gives it
	// back when it becomes unreachable, when nothing can use it any more:
	// a step reads the matrices only through a row that holds the Adapter.
	runtime.AddCleanup(ad, func(m *hugemem.Arena) { m.Free() }, mem)
	return ad, nil
}

// toHalf returns v rounded to binary16, or false if v is finite and beyond
// binary16's range (|v| rounds past 65504, the largest binary16) and would
// become an infinity.
func toHalf(v float32) (uint16, bool) {
	h := half.Float32ToF16(v)
	return h, h&0x7fff != 0x7c00 || math.IsInf(float64(v), 0)
}

// beyondHalf is the error for element [row, col] of the module's matrix
// (lora_A or lora_B, as PEFT names them), v, that binary16 cannot hold: an
// adapter held in half precision would add infinities to every row using it.
func (ad *Adapter) beyondHalf(module, matrix string, row, col int, v float32) error {
	return fmt.Errorf("serve: adapter %q: %s.%s[%d, %d] = %g is beyond half precision's range (±65504): hold adapters in f32", ad.name, module, matrix, row, col, v)
}

// fill decodes the pairs into ad's arena.
func (ad *Adapter) fill(src pairReader, shapes []pairShape, byName map[string]*model.Linear, prec Precision, buf []float32) error {
	chunk := len(buf)
	for _, p := range shapes {
		t := term{in: p.in, out: p.out, LowRank: infer.LowRank{R: p.r, Scale: p.scaling}}
		nA, nB := p.r*p.in, p.r*p.out
		rowsB := max(1, chunk/p.r) // rows of B [out, r] per chunk
		if prec == Float16 {
			t.A16, t.BT16 = hugemem.Alloc[uint16](ad.mem, nA), hugemem.Alloc[uint16](ad.mem, nB)
			for off := 0; off < nA; off += chunk {
				n := min(chunk, nA-off)
				if err := src.readA(p.module, buf[:n], off); err != nil {
					return err
				}
				for i, v := range buf[:n] {
					h, ok := toHalf(v)
					if !ok {
						k := off + i
						return ad.beyondHalf(p.module, "lora_A", k/p.in, k%p.in, v)
					}
					t.A16[off+i] = h
				}
			}
		} else {
			t.A, t.BT = hugemem.Alloc[float32](ad.mem, nA), hugemem.Alloc[float32](ad.mem, nB)
			if err := src.readA(p.module, t.A, 0); err != nil {
				return err
			}
		}
		for i0 := 0; i0 < p.out; i0 += rowsB {
			n := min(rowsB, p.out-i0)
			part := buf[:n*p.r]
			if err := src.readB(p.module, part, i0*p.r); err != nil {
				return err
			}
			for i := range n {
				for j := range p.r {
					v := part[i*p.r+j]
					if t.BT16 != nil {
						h, ok := toHalf(v)
						if !ok {
							return ad.beyondHalf(p.module, "lora_B", i0+i, j, v)
						}
						t.BT16[j*p.out+i0+i] = h
					} else {
						t.BT[j*p.out+i0+i] = v
					}
				}
			}
		}
		ad.lins, ad.terms = append(ad.lins, byName[p.module]), append(ad.terms, t)
	}
	return nil
}

// free returns the adapter's memory; it is called once nothing can use it.
func (ad *Adapter) free() {
	ad.mem.Free()
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
	if n == 0 {
		return nil
	}
	t, err := a.at(lin)
	if t == nil {
		return err
	}
	if lin.In != t.in || lin.Out != t.out || len(x) < n*t.in || len(y) < n*t.out {
		return fmt.Errorf("serve: adapter %q at %s: shapes disagree (layer [%d %d], pair [%d %d], %d rows, x %d, y %d)",
			a.name, lin.Name, lin.Out, lin.In, t.out, t.in, n, len(x), len(y))
	}
	var stack [maxStackRank]float32
	s := stack[:0]
	if t.R > len(stack) {
		s = make([]float32, t.R)
	}
	s = s[:t.R]
	a32, bt32 := t.A, t.BT
	if t.A16 != nil && n > 1 {
		// A group converts the matrices once, not once per row.
		buf := expanded.Get().(*[]float32)
		defer expanded.Put(buf)
		need := t.R * (t.in + t.out)
		if cap(*buf) < need {
			*buf = make([]float32, need)
		}
		a32, bt32 = (*buf)[:t.R*t.in], (*buf)[t.R*t.in:need]
		kernels.F16ToFloat32s(a32, t.A16)
		kernels.F16ToFloat32s(bt32, t.BT16)
	}
	for i := range n {
		xi, yi := x[i*t.in:(i+1)*t.in], y[i*t.out:(i+1)*t.out]
		if a32 == nil {
			kernels.LowRankShrinkF16(s, xi, t.A16, t.R, t.in, t.Scale)
			kernels.LowRankExpandF16(yi, s, t.BT16, t.R, t.out)
		} else {
			kernels.LowRankShrink(s, xi, a32, t.R, t.in, t.Scale)
			kernels.LowRankExpand(yi, s, bt32, t.R, t.out)
		}
	}
	return nil
}

// LowRank returns the adapter's term at lin for an infer.Batch to run
// itself (infer.LowRankAdapter): R 0 when the adapter has none there. Its
// matrices are the cached ones, not copies.
// (A mixed batch makes one call per adapter and linear layer, each to an
// adapter whose memory the last step's other adapters have evicted from
// the caches: a scan of lins, whose loads overlap, then one term.) The
// Batch checks the
// matrices' lengths against the layer's shape.
func (a *Adapter) LowRank(lin *model.Linear) (infer.LowRank, error) {
	t, err := a.at(lin)
	if t == nil {
		return infer.LowRank{}, err
	}
	return t.LowRank, nil
}

// at returns the adapter's term at lin: nil and no error when it has none
// there, nil and an error wrapping ErrReleased when its memory is gone.
func (a *Adapter) at(lin *model.Linear) (*term, error) {
	i := slices.Index(a.lins, lin)
	if i < 0 {
		return nil, nil
	}
	if a.mem.Freed() {
		return nil, fmt.Errorf("%w: %q at %s", ErrReleased, a.name, lin.Name)
	}
	return &a.terms[i], nil
}

// expanded holds float32 copies of half-precision matrices for AddDelta's
// groups of rows.
var expanded = sync.Pool{New: func() any { return new([]float32) }}

var _ infer.LowRankAdapter = (*Adapter)(nil)
