package gemm

import (
	"fmt"
	"math/rand/v2"
	"sync/atomic"
	"testing"
)

// sliceSource is a Source reading a row-major matrix from a slice; it counts
// the elements it is asked for and fails the test on a block outside the
// matrix.
type sliceSource struct {
	t          *testing.T
	data       []float32
	rows, cols int
	ld         int
	written    atomic.Int64
}

func (s *sliceSource) Block(dst []float32, ld, r0, r1, c0, c1 int) {
	if r0 < 0 || r1 > s.rows || r0 > r1 || c0 < 0 || c1 > s.cols || c0 > c1 || ld < c1-c0 {
		s.t.Errorf("Block(ld=%d, rows [%d, %d), cols [%d, %d)) outside %d×%d", ld, r0, r1, c0, c1, s.rows, s.cols)
		return
	}
	for r := r0; r < r1; r++ {
		copy(dst[(r-r0)*ld:(r-r0)*ld+c1-c0], s.data[r*s.ld+c0:r*s.ld+c1])
	}
	s.written.Add(int64((r1 - r0) * (c1 - c0)))
}

// TestSourceMatchesSlice: a product whose B comes from a Source has the
// same bits as the product of the slice the Source reads, on every code
// path, split over goroutines or not, through each way of splitting the
// work (by rows with B packed together, by columns, serial), past the
// cache blocks of every dimension.
func TestSourceMatchesSlice(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 8))
	shapes := [][3]int{{5, 7, 9}, {37, 45, 600}, {20, 2000, 120}, {512, 288, 768}, {100, 900, 288}, {3100, 9, 160}, {3, 4200, 5}, {40, 2400, 700}}
	for _, tr := range [][2]bool{{false, false}, {false, true}, {true, false}, {true, true}} {
		for i, sh := range shapes {
			beta := []float32{0, 1, 0.5}[i%3]
			p := newProblem(rng, tr[0], tr[1], sh[0], sh[1], sh[2], 2, 1.25, beta)
			br, bc := p.k, p.n
			if p.transB {
				br, bc = p.n, p.k
			}
			for _, kr := range levels() {
				for _, threads := range []int{1, 2, 3} {
					want := p.run(kr, threads)
					src := &sliceSource{t: t, data: p.b, rows: br, cols: bc, ld: p.ldb}
					got := append([]float32(nil), p.c...)
					sgemmB(kr, threads, p.transA, p.transB, p.m, p.n, p.k, p.alpha, p.a, p.lda, matB{src: src, rows: br, cols: bc}, p.beta, got, p.ldc)
					name := fmt.Sprintf("%v/%d threads %v", kr, threads, p)
					if j := bitsDiffer(got, want); j >= 0 {
						t.Fatalf("%s: C[%d] = %v from the Source, %v from the slice", name, j, got[j], want[j])
					}
					// Each element of B is produced once per block of rows of
					// C that packs it (at most two per goroutine when the rows
					// are split), never once per tile.
					blocksM := (p.m + kr.mc - 1) / kr.mc
					if w := src.written.Load(); w > int64((blocksM+2*threads)*br*bc) {
						t.Errorf("%s: the Source wrote %d elements for a %d×%d B", name, w, br, bc)
					}
				}
			}
		}
	}
}

// TestSgemmSourceChecks: SgemmSource panics on bad arguments like Sgemm.
func TestSgemmSourceChecks(t *testing.T) {
	for _, tc := range []struct {
		name string
		f    func()
	}{
		{"negative n", func() { SgemmSource(false, false, 1, -1, 1, 1, nil, 1, &sliceSource{}, 0, nil, 1) }},
		{"nil source", func() { SgemmSource(false, false, 1, 1, 1, 1, []float32{1}, 1, nil, 0, []float32{0}, 1) }},
		{"short C", func() {
			SgemmSource(false, false, 2, 2, 1, 1, []float32{1, 1}, 1, &sliceSource{}, 0, []float32{0}, 2)
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
