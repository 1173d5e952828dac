package gemm

import (
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/golora/golora/internal/cpu"
)

// problem is one product with its operands, laid out with leading dimensions
// wider than the matrices so that stray reads and writes show.
type problem struct {
	transA, transB bool
	m, n, k        int
	alpha, beta    float32
	a, b, c        []float32
	lda, ldb, ldc  int
}

func newProblem(rng *rand.Rand, transA, transB bool, m, n, k, pad int, alpha, beta float32) *problem {
	p := &problem{transA: transA, transB: transB, m: m, n: n, k: k, alpha: alpha, beta: beta}
	ar, ac := m, k
	if transA {
		ar, ac = k, m
	}
	br, bc := k, n
	if transB {
		br, bc = n, k
	}
	// BLAS wants leading dimensions of at least 1, even for empty matrices.
	p.lda, p.ldb, p.ldc = max(1, ac+pad), max(1, bc+pad), max(1, n+pad)
	p.a = randSlice(rng, ar*p.lda)
	p.b = randSlice(rng, br*p.ldb)
	p.c = randSlice(rng, m*p.ldc)
	return p
}

func randSlice(rng *rand.Rand, n int) []float32 {
	s := make([]float32, n)
	for i := range s {
		s[i] = rng.Float32()*2 - 1
	}
	return s
}

func (p *problem) opA(i, l int) float32 {
	if p.transA {
		return p.a[l*p.lda+i]
	}
	return p.a[i*p.lda+l]
}

func (p *problem) opB(l, j int) float32 {
	if p.transB {
		return p.b[j*p.ldb+l]
	}
	return p.b[l*p.ldb+j]
}

// reference returns, for every element of C, the float64 value of the
// product and a bound on the rounding error a float32 computation may make
// (k+2 roundings of the absolute terms).
func (p *problem) reference() (want, tol []float64) {
	want = make([]float64, len(p.c))
	tol = make([]float64, len(p.c))
	const eps = 1.0 / (1 << 23)
	for i := range p.m {
		for j := range p.n {
			var s, abs float64
			for l := range p.k {
				t := float64(p.opA(i, l)) * float64(p.opB(l, j))
				s += t
				abs += math.Abs(t)
			}
			ci := i*p.ldc + j
			cv := 0.0
			if p.beta != 0 {
				cv = float64(p.beta) * float64(p.c[ci])
			}
			want[ci] = float64(p.alpha)*s + cv
			tol[ci] = float64(p.k+2)*eps*(math.Abs(float64(p.alpha))*abs+math.Abs(cv)) + 1e-30
		}
	}
	return want, tol
}

// run computes the product with kernel kr on threads goroutines into a copy
// of C, which it returns.
func (p *problem) run(kr *kernel, threads int) []float32 { return p.runPath(path{kr: kr}, threads) }

// runPath is run on a path, which may compute Cᵀ.
func (p *problem) runPath(pa path, threads int) []float32 {
	c := append([]float32(nil), p.c...)
	sgemm(pa.kr, pa.swap, threads, p.transA, p.transB, p.m, p.n, p.k, p.alpha, p.a, p.lda, p.b, p.ldb, p.beta, c, p.ldc)
	return c
}

func (p *problem) String() string {
	return fmt.Sprintf("transA=%v transB=%v m=%d n=%d k=%d alpha=%v beta=%v", p.transA, p.transB, p.m, p.n, p.k, p.alpha, p.beta)
}

// verify checks got against the reference inside C and checks that the
// padding of C is untouched.
func (p *problem) verify(t testing.TB, name string, got []float32, want, tol []float64) {
	t.Helper()
	for i := range p.m {
		for j := range p.ldc {
			ci := i*p.ldc + j
			if j >= p.n {
				if math.Float32bits(got[ci]) != math.Float32bits(p.c[ci]) {
					t.Fatalf("%s %v: padding C[%d,%d] was written", name, p, i, j)
				}
				continue
			}
			if d := math.Abs(float64(got[ci]) - want[ci]); !(d <= tol[ci]) {
				t.Fatalf("%s %v: C[%d,%d] = %v, want %v ± %.3g", name, p, i, j, got[ci], want[ci], tol[ci])
			}
		}
	}
}

// levels returns every code path this machine can run, pure Go first, each
// with all its tiles.
func levels() []*kernel {
	var ks []*kernel
	for l := cpu.Generic; l <= cpu.Supported(); l++ {
		if kr := kernelFor(l); kr.level == l {
			ks = append(ks, kernelsFor(l)...)
		}
	}
	return ks
}

// A path is a tile and whether the product is computed as C or as Cᵀ
// (sgemmT).
type path struct {
	kr   *kernel
	swap bool
}

func (pa path) String() string {
	if pa.swap {
		return pa.kr.String() + "/transposed"
	}
	return pa.kr.String()
}

// paths returns every tile of levels, each computing C and Cᵀ.
func paths() []path {
	var ps []path
	for _, kr := range levels() {
		ps = append(ps, path{kr, false}, path{kr, true})
	}
	return ps
}

// TestPick: products with 8 columns (LoRA's rank) take the 8×48 tile
// computing Cᵀ; those with 48 or with many columns the 8×48 tile as is, whose
// cost per element is the lowest; 64 columns the 14×32 tile; a product too
// small for 48 columns the 28×8 tile.
func TestPick(t *testing.T) {
	ks := kernelsFor(cpu.AVX512)
	if ks[0].level != cpu.AVX512 {
		t.Skip("no AVX-512 path in this build")
	}
	for _, c := range []struct {
		m, n, mr, nr int
		swap         bool
	}{
		{512, 8, 8, 48, true}, {288, 8, 8, 48, true}, {8, 288, 8, 48, false}, {8, 8, 28, 8, false},
		{512, 16, 8, 48, true}, {128, 48, 8, 48, false}, {512, 64, 14, 32, false}, {512, 288, 8, 48, false},
		{512, 768, 8, 48, false}, {128, 128, 8, 48, false}, {512, 2048, 8, 48, false}, {32000, 288, 8, 48, false},
	} {
		got, swap := pick(cpu.AVX512, c.m, c.n, true)
		if got.mr != c.mr || got.nr != c.nr || swap != c.swap {
			t.Errorf("%d×%d: tile %v transposed %v, want %d×%d transposed %v", c.m, c.n, got, swap, c.mr, c.nr, c.swap)
		}
	}
	if _, swap := pick(cpu.AVX512, 512, 8, false); swap {
		t.Errorf("512×8 not transposable: transposed")
	}
}

// TestLevels runs every code path the machine supports directly, whatever
// GOLORA_KERNELS says, with every tile, on shapes around the tile sizes (1,
// below, at and above 4, 6, 8, 12, 14, 16, 28, 32 and 48) and past the cache blocks (kc 256…384, mc
// 512…1008, nc 128…384), every transpose, and alpha/beta values including the
// special 0 and 1.
func TestLevels(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	sizes := []int{1, 2, 3, 5, 6, 7, 8, 9, 13, 14, 15, 16, 17, 27, 28, 29, 31, 32, 33, 47, 48, 49}
	scalars := [][2]float32{{1, 0}, {0.5, 2}, {-1.5, 1}, {1, -0.25}}
	var probs []*problem
	for _, ta := range []bool{false, true} {
		for _, tb := range []bool{false, true} {
			for i, m := range sizes {
				n := sizes[(i*7+3)%len(sizes)]
				k := sizes[(i*5+1)%len(sizes)]
				s := scalars[i%len(scalars)]
				probs = append(probs, newProblem(rng, ta, tb, m, n, k, 3, s[0], s[1]))
			}
			// Past the cache blocks: several kc blocks (beta applied once),
			// several mc blocks, a partial edge on every side.
			probs = append(probs,
				newProblem(rng, ta, tb, 37, 45, 600, 1, 0.75, 0.5),
				newProblem(rng, ta, tb, 1100, 21, 30, 2, 1, 0),
				newProblem(rng, ta, tb, 3, 4200, 5, 0, 2, 1),
				// Split over goroutines (m·n·k ≥ parallelMinWork) by
				// columns (few rows), and by rows with op(B) packed
				// together or, past mc rows each, apart.
				newProblem(rng, ta, tb, 20, 2000, 120, 1, 1, 0.5),
				newProblem(rng, ta, tb, 300, 300, 50, 1, 0.5, 0),
				newProblem(rng, ta, tb, 3100, 9, 160, 1, 1, 1),
				// Rows in one block and many column blocks: op(A) packed
				// together, op(B) taken block by block.
				newProblem(rng, ta, tb, 40, 2400, 700, 1, 1, 0.5),
			)
		}
	}
	for _, p := range probs {
		want, tol := p.reference()
		for _, pa := range paths() {
			for _, threads := range []int{1, 3} {
				p.verify(t, fmt.Sprintf("%v/%d threads", pa, threads), p.runPath(pa, threads), want, tol)
			}
		}
	}
}

// TestLevelsAgreeWithGeneric compares each assembly path with the pure-Go
// path on a product large enough to be split over goroutines.
func TestLevelsAgreeWithGeneric(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	for _, tr := range [][2]bool{{false, false}, {false, true}, {true, false}, {true, true}} {
		p := newProblem(rng, tr[0], tr[1], 130, 150, 300, 5, 1, 1)
		want := p.run(generic, 1)
		for _, pa := range paths()[1:] {
			got := p.runPath(pa, 4)
			for i, w := range want {
				if d := math.Abs(float64(got[i] - w)); d > 1e-4*(1+math.Abs(float64(w))) {
					t.Fatalf("%v %v: C[%d] = %v, pure Go %v", pa, p, i, got[i], w)
				}
			}
		}
	}
}

// TestBetaZeroDoesNotReadC fills C with NaN: with beta 0 none may survive,
// whichever operand is transposed, and with alpha 0 A and B (NaN too) must not be read.
func TestBetaZeroDoesNotReadC(t *testing.T) {
	nan := float32(math.NaN())
	for _, pa := range paths() {
		kr, swap := pa.kr, pa.swap
		for _, shape := range [][3]int{{1, 1, 1}, {20, 40, 9}, {64, 300, 70}, {600, 8, 1000}, {48, 49, 8}, {9, 47, 48}, {49, 1, 7}, {8, 48, 1}} {
			m, n, k := shape[0], shape[1], shape[2]
			a, b, c := make([]float32, m*k), make([]float32, k*n), make([]float32, m*n)
			for i := range a {
				a[i] = 1
			}
			for i := range b {
				b[i] = 2
			}
			for i := range c {
				c[i] = nan
			}
			// A and B are constant, so that either may be read transposed
			// (with its leading dimension swapped) for the same product.
			for tr := range 4 {
				transA, transB := tr&1 != 0, tr&2 != 0
				lda, ldb := k, n
				if transA {
					lda = m
				}
				if transB {
					ldb = k
				}
				for _, beta := range []float32{0, float32(math.Copysign(0, -1))} {
					sgemm(kr, swap, 2, transA, transB, m, n, k, 1, a, lda, b, ldb, beta, c, n)
					for i, v := range c {
						if v != float32(2*k) {
							t.Fatalf("%v %v transA=%v transB=%v beta=%v: C[%d] = %v, want %v", pa, shape, transA, transB, beta, i, v, 2*k)
						}
					}
					for i := range c {
						c[i] = nan
					}
				}
			}
			for i := range a {
				a[i] = nan
			}
			for i := range b {
				b[i] = nan
			}
			for i := range c {
				c[i] = 3
			}
			sgemm(kr, swap, 2, false, false, m, n, k, 0, a, k, b, n, 0.5, c, n)
			for i, v := range c {
				if v != 1.5 {
					t.Fatalf("%v %v alpha=0: C[%d] = %v, want 1.5", kr, shape, i, v)
				}
			}
		}
	}
}

func TestKZero(t *testing.T) {
	c := []float32{1, 2, 3, 4}
	Sgemm(false, false, 2, 2, 0, 1, nil, 1, nil, 2, 2, c, 2)
	for i, v := range c {
		if v != float32(2*(i+1)) {
			t.Fatalf("k=0: C = %v, want beta·C", c)
		}
	}
}

func TestCheckPanics(t *testing.T) {
	for _, tc := range []struct {
		name string
		f    func()
	}{
		{"negative m", func() { Sgemm(false, false, -1, 1, 1, 1, nil, 1, nil, 1, 0, nil, 1) }},
		{"small lda", func() {
			Sgemm(false, false, 2, 2, 3, 1, make([]float32, 6), 2, make([]float32, 6), 2, 0, make([]float32, 4), 2)
		}},
		{"short B", func() {
			Sgemm(false, true, 2, 2, 3, 1, make([]float32, 6), 3, make([]float32, 5), 3, 0, make([]float32, 4), 2)
		}},
	} {
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("%s: no panic", tc.name)
				}
			}()
			tc.f()
		}()
	}
}

// TestSteadyStateDoesNotAllocate: packed panels are reused, so a
// single-threaded product allocates nothing once warm.
func TestSteadyStateDoesNotAllocate(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	p := newProblem(rng, false, true, 100, 100, 300, 0, 1, 0)
	kr := kernelFor(cpu.Best())
	allocs := testing.AllocsPerRun(20, func() {
		sgemm(kr, false, 1, p.transA, p.transB, p.m, p.n, p.k, p.alpha, p.a, p.lda, p.b, p.ldb, p.beta, p.c, p.ldc)
	})
	if allocs != 0 {
		t.Errorf("%v allocations per product, want 0", allocs)
	}
}

// TestEnvSelectsLevel: CI runs this package under each GOLORA_KERNELS value
// and Sgemm must then run that path.
func TestEnvSelectsLevel(t *testing.T) {
	env := os.Getenv(cpu.EnvVar)
	if env == "" {
		t.Skip(cpu.EnvVar + " is not set")
	}
	want, err := cpu.ParseLevel(env)
	if err != nil {
		t.Fatal(err)
	}
	want = min(want, cpu.Supported())
	if Level() != want {
		t.Errorf("%s=%s: Sgemm runs %v, want %v", cpu.EnvVar, env, Level(), want)
	}
	t.Logf("Sgemm runs the %v path", Level())
}

// FuzzSgemm checks random shapes, transposes, paddings and scalars on every
// code path against the float64 reference.
func FuzzSgemm(f *testing.F) {
	f.Add(uint8(1), uint8(1), uint16(1), uint8(0), uint8(0), int8(2), int8(0), uint64(1))
	f.Add(uint8(15), uint8(33), uint16(300), uint8(3), uint8(2), int8(-3), int8(1), uint64(2))
	f.Add(uint8(200), uint8(17), uint16(7), uint8(0), uint8(1), int8(1), int8(4), uint64(3))
	f.Fuzz(func(t *testing.T, m, n uint8, k uint16, trans, pad uint8, alpha, beta int8, seed uint64) {
		k %= 700
		rng := rand.New(rand.NewPCG(seed, 7))
		p := newProblem(rng, trans&1 != 0, trans&2 != 0, int(m), int(n), int(k), int(pad%5), float32(alpha)/2, float32(beta)/2)
		want, tol := p.reference()
		for _, pa := range paths() {
			p.verify(t, pa.String(), p.runPath(pa, 2), want, tol)
		}
	})
}

// TestSplitPaths: the test problems above that are meant to be split over
// goroutines are large enough to be.
func TestSplitPaths(t *testing.T) {
	for _, s := range [][3]int{{20, 2000, 120}, {300, 300, 50}, {3100, 9, 160}, {130, 150, 300}, {40, 2400, 700}} {
		if s[0]*s[1]*s[2] < parallelMinWork {
			t.Errorf("%v: m·n·k = %d, below parallelMinWork %d: not split", s, s[0]*s[1]*s[2], parallelMinWork)
		}
	}
}

// TestThreadsSameBits: a product has the same bits on one goroutine as split
// over two or three, whichever way it is split (op(A) packed together,
// op(B) packed together, by columns, by rows, in place or packed): the blocks of the inner
// dimension, and so the order of the sums, do not depend on the split.
func TestThreadsSameBits(t *testing.T) {
	rng := rand.New(rand.NewPCG(9, 10))
	for _, tr := range [][2]bool{{false, false}, {false, true}, {true, false}, {true, true}} {
		for _, sh := range [][3]int{{40, 2400, 700}, {300, 300, 500}, {200, 700, 300}, {20, 2000, 120}, {3100, 9, 160}} {
			p := newProblem(rng, tr[0], tr[1], sh[0], sh[1], sh[2], 1, 1, 0.5)
			for _, pa := range paths() {
				want := p.runPath(pa, 1)
				for _, threads := range []int{2, 3} {
					got := p.runPath(pa, threads)
					if i := bitsDiffer(got, want); i >= 0 {
						t.Fatalf("%v %v: C[%d] = %v on %d threads, %v on one", pa, p, i, got[i], threads, want[i])
					}
				}
			}
		}
	}
}

// TestSharedPathsSameBits runs each way of splitting a product over
// goroutines directly (sgemmB picks one by shape, and packs op(A) in more
// than one span of the inner dimension only when it is larger than a test
// can afford) on a product with several blocks of every dimension, and
// checks that each has the bits of the serial product and stays inside C.
func TestSharedPathsSameBits(t *testing.T) {
	rng := rand.New(rand.NewPCG(11, 12))
	type path func(kr *kernel, threads int, transA, transB bool, m, n, k int, alpha float32, a []float32, lda int, b matB, beta float32, c []float32, ldc int)
	sharedASpans := func(maxPacked int) path {
		return func(kr *kernel, threads int, transA, transB bool, m, n, k int, alpha float32, a []float32, lda int, b matB, beta float32, c []float32, ldc int) {
			sharedA(kr, threads, maxPacked, transA, transB, m, n, k, alpha, a, lda, b, beta, c, ldc)
		}
	}
	paths := map[string]path{
		"sharedA":                  sharedASpans(packedAMax),
		"sharedA/one block a span": sharedASpans(1),
		"sharedA/two blocks":       sharedASpans(2 * 56 * 384),
		"sharedB":                  sharedB,
	}
	for _, tr := range [][2]bool{{false, false}, {false, true}, {true, true}} {
		p := newProblem(rng, tr[0], tr[1], 45, 1000, 1300, 3, 1.5, 0.5)
		want, tol := p.reference()
		for _, kr := range levels() {
			serialC := p.run(kr, 1)
			for name, f := range paths {
				for _, threads := range []int{2, 3} {
					got := append([]float32(nil), p.c...)
					f(kr, threads, p.transA, p.transB, p.m, p.n, p.k, p.alpha, p.a, p.lda, matB{data: p.b, ld: p.ldb}, p.beta, got, p.ldc)
					label := fmt.Sprintf("%v %s/%d threads", kr, name, threads)
					p.verify(t, label, got, want, tol)
					if i := bitsDiffer(got, serialC); i >= 0 {
						t.Fatalf("%s %v: C[%d] = %v, %v serially", label, p, i, got[i], serialC[i])
					}
				}
			}
		}
	}
}

// bitsDiffer returns the first index at which got and want (of equal
// length) differ in their bits, or −1.
func bitsDiffer(got, want []float32) int {
	for i := range want {
		if math.Float32bits(got[i]) != math.Float32bits(want[i]) {
			return i
		}
	}
	return -1
}

// TestDirectSameBits: a tile with a strided kernel reads small products'
// operands in place (direct); the result must have the bits of the same
// tile on packed panels, edges, transposes and Cᵀ included, and match the
// reference.
func TestDirectSameBits(t *testing.T) {
	rng := rand.New(rand.NewPCG(13, 14))
	var direct []*kernel
	for _, kr := range levels() {
		if kr.strided != nil {
			direct = append(direct, kr)
		}
	}
	if len(direct) == 0 {
		t.Skip("no tile with a strided kernel in this build")
	}
	shapes := [][3]int{{128, 48, 128}, {8, 288, 512}, {288, 8, 512}, {13, 50, 700}, {8, 97, 33}, {130, 47, 40}, {7, 5, 3}, {64, 96, 1}, {49, 97, 9}, {1, 48, 49}, {9, 49, 47}}
	for _, kr := range direct {
		packed := *kr
		packed.strided = nil
		for _, tr := range [][2]bool{{false, false}, {false, true}, {true, false}, {true, true}} {
			for i, sh := range shapes {
				for _, swap := range []bool{false, true} {
					s := [][2]float32{{1, 0}, {0.5, 1}, {-1, 0.25}}[i%3]
					p := newProblem(rng, tr[0], tr[1], sh[0], sh[1], sh[2], 2, s[0], s[1])
					if p.m*p.k+p.k*p.n > directMaxElems {
						t.Fatalf("%v: too large to be read in place", p)
					}
					want, tol := p.reference()
					label := fmt.Sprintf("%v transposed=%v", kr, swap)
					got := p.runPath(path{kr, swap}, 1)
					p.verify(t, label, got, want, tol)
					if i := bitsDiffer(got, p.runPath(path{&packed, swap}, 1)); i >= 0 {
						t.Fatalf("%s %v: C[%d] differs in place and packed", label, p, i)
					}
				}
			}
		}
	}
}

// TestBarrier: no goroutine leaves a round of the barrier before all have
// arrived at it, whether they find it done while polling or park.
func TestBarrier(t *testing.T) {
	const n, rounds = 3, 200
	bar := newBarrier(n)
	var arrived [rounds]atomic.Int32
	var wg sync.WaitGroup
	for id := range n {
		wg.Go(func() {
			for r := range rounds {
				if id == r%n && r%2 == 0 {
					// Late now and then, so that the others park.
					time.Sleep(100 * time.Microsecond)
				}
				arrived[r].Add(1)
				bar.wait()
				if got := arrived[r].Load(); got != n {
					t.Errorf("round %d: left the barrier with %d of %d arrived", r, got, n)
					return
				}
			}
		})
	}
	wg.Wait()
}
