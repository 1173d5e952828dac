// Package gemm multiplies float32 matrices: the single-precision general
// matrix product (BLAS sgemm) that golora's training and inference spend most
// of their time in, in Go and Go assembly, with no cgo.
//
// The structure is Goto's and BLIS's: blocks of op(A) and op(B) are packed
// (in Go, which absorbs transposes and leading dimensions) into panels sized
// for the caches, and a register-blocked micro-kernel multiplies one panel of
// each into a small tile of C. The micro-kernels are written for AVX-512
// (8×48 and 14×32 tiles, and 28×16 and 28×8 for products with few columns)
// and AVX2 with FMA (6×16, 12×8), generated with avo by the separate module
// in asmgen, and in pure Go (2×4) for other CPUs; the code path is the one
// internal/cpu.Best names, so GOLORA_KERNELS can force a lower one. A
// product with few columns and many rows is computed as its transpose, and
// the 8×48 tile and the AVX2 tiles read a small product's operands where
// they lie instead of packing them.
// SgemmSource takes B from a Source instead of a slice, so that a compressed
// weight is decoded straight into the packed panels.
// Large products are split over GOMAXPROCS goroutines, and each assembly call
// covers one tile over one cache block of the inner dimension, so that the
// goroutines stay preemptible.
package gemm

//go:generate sh -c "cd asmgen && go run . -out ../kernel_amd64.s -stubs ../kernel_amd64.go -pkg gemm"

import (
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"

	"github.com/golora/golora/internal/cpu"
	"github.com/golora/golora/internal/parallel"
)

// splitSourceMax is the largest op(B) from a Source, in elements, whose
// product sgemmB splits by rows with each goroutine decoding all of op(B)
// rather than one shared copy behind barriers. Decoding a weight twice
// costs little next to the product once the rows are many: with NF4
// stories15M-shaped weights (at most 768×288), a QLoRA training step's NF4
// products went from 1.06–1.08× the dense step's time to 0.98–1.02× (4
// alternated rounds). Larger weights, whose second decoding was not
// measured, keep the shared copy.
const splitSourceMax = 1 << 20

// parallelMinWork is the smallest m·n·k split over goroutines. Starting one
// costs about a microsecond, but the split also packs an operand twice or
// waits at barriers, and the small products of a training step (LoRA's
// rank-8 factors, one attention head) usually run inside goroutines of their
// own already: in BenchmarkSgemm the products of about 10⁶ (512×288×8,
// 128×128×48) were slower on two threads than on one, those of 4·10⁷
// (512×288×288) faster.
const parallelMinWork = 1 << 22

// kcUnit is the granularity of the blocks of the inner dimension: they start
// at multiples of 32, so that a Source decoding B in runs of 32 aligned
// elements (as nf4's vector decoder does) rarely has to handle a partial run
// at a block's edge in scalar code. Every kc of the kernels is a multiple.
const kcUnit = 32

// Sgemm computes C = alpha·op(A)·op(B) + beta·C for row-major float32
// matrices, where op(X) is X or Xᵀ as transA and transB say; op(A) is m×k,
// op(B) is k×n and C is m×n, with leading dimensions lda, ldb and ldc. The
// slices may start anywhere inside a larger matrix. When beta is 0, C is
// overwritten without being read (NaNs in it do not survive); when alpha is 0
// or k is 0, A and B are not read.
//
// Sgemm uses every available CPU (GOMAXPROCS) for large products. Calls may
// run concurrently. It panics, like gonum's BLAS, when a dimension is
// negative, a leading dimension is too small or a slice too short.
func Sgemm(transA, transB bool, m, n, k int, alpha float32, a []float32, lda int, b []float32, ldb int, beta float32, c []float32, ldc int) {
	kr, swap := pick(cpu.Best(), m, n, true)
	sgemm(kr, swap, runtime.GOMAXPROCS(0), transA, transB, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc)
}

// Level returns the instruction-set level Sgemm runs at on this machine.
func Level() cpu.Level { return kernelFor(cpu.Best()).level }

// SgemmSource is Sgemm with B produced by src instead of held in a slice:
// B is the k×n matrix op(B), or, when transB is set, the n×k matrix whose
// transpose is op(B). Each block of B is asked for just before it is
// packed, so that a compressed weight is decoded straight into the packed
// panels and never exists whole as float32: once per product when the rows
// of C fit one cache block (as those of a training step do), once per block
// of rows otherwise. The result has the same bits as Sgemm on the matrix src
// describes. Calls may run concurrently if src allows it.
func SgemmSource(transA, transB bool, m, n, k int, alpha float32, a []float32, lda int, src Source, beta float32, c []float32, ldc int) {
	checkSource(transA, m, n, k, a, lda, src, c, ldc)
	br, bc := k, n
	if transB {
		br, bc = n, k
	}
	kr, _ := pick(cpu.Best(), m, n, false)
	sgemmB(kr, runtime.GOMAXPROCS(0), transA, transB, m, n, k, alpha, a, lda, matB{src: src, rows: br, cols: bc}, beta, c, ldc)
}

// A Source writes blocks of a rows×cols float32 matrix on demand, for
// instance by decoding a compressed one. Block must write rows [r0, r1) and
// columns [c0, c1) into dst, row-major with leading dimension ld; the ranges
// are always inside the matrix. Calls may run concurrently.
type Source interface {
	Block(dst []float32, ld, r0, r1, c0, c1 int)
}

// matB is the stored B: a slice with its leading dimension, or a block of
// rows×cols of a Source starting at row r0 and column c0.
type matB struct {
	data       []float32
	ld         int
	src        Source
	rows, cols int
	r0, c0     int
}

// shift returns the B whose op(B) starts at column j of this one's.
func (b matB) shift(j int, transB bool) matB {
	switch {
	case b.src != nil && transB:
		b.r0 += j
		b.rows -= j
	case b.src != nil:
		b.c0 += j
		b.cols -= j
	case transB:
		b.data = b.data[j*b.ld:]
	default:
		b.data = b.data[j:]
	}
	return b
}

// sgemm is Sgemm with kernel kr on threads goroutines, computing Cᵀ instead
// of C when swap is set.
func sgemm(kr *kernel, swap bool, threads int, transA, transB bool, m, n, k int, alpha float32, a []float32, lda int, b []float32, ldb int, beta float32, c []float32, ldc int) {
	check(transA, transB, m, n, k, a, lda, b, ldb, c, ldc)
	if swap {
		sgemmT(kr, threads, transA, transB, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc)
		return
	}
	sgemmB(kr, threads, transA, transB, m, n, k, alpha, a, lda, matB{data: b, ld: ldb}, beta, c, ldc)
}

// sgemmT computes C through its transpose, Cᵀ = op(B)ᵀ·op(A)ᵀ, n×m: op(B)ᵀ
// is the left operand and op(A)ᵀ the right one, and the tiles of Cᵀ are
// transposed into C as they are stored. A product with few
// columns and many rows (LoRA's rank-8 factors: 512×8) then runs on a tile
// with few rows and many columns (8×48), whose vectors are full, where the
// tiles with 8 columns use half-width vectors. Large products split the
// rows of C (the columns of Cᵀ) over goroutines, each packing the small
// op(B)ᵀ itself.
func sgemmT(kr *kernel, threads int, transA, transB bool, m, n, k int, alpha float32, a []float32, lda int, b []float32, ldb int, beta float32, c []float32, ldc int) {
	beta, done := trivial(m, n, k, alpha, beta, c, ldc)
	if done {
		return
	}
	at := matB{data: a, ld: lda}
	if threads < 2 || m*n*k < parallelMinWork {
		serial(kr, true, !transB, !transA, n, m, k, alpha, b, ldb, at, beta, c, ldc)
		return
	}
	parallel.For(m, kr.nr, kr.nr, func(lo, hi int) {
		serial(kr, true, !transB, !transA, n, hi-lo, k, alpha, b, ldb, at.shift(lo, !transA), beta, c[lo*ldc:], ldc)
	})
}

// trivial does the products that multiply nothing: none when C is empty,
// C = beta·C when alpha or k is 0. It reports whether the product was one,
// and returns beta with -0 made +0, because the kernels test beta's bits.
func trivial(m, n, k int, alpha, beta float32, c []float32, ldc int) (float32, bool) {
	if m == 0 || n == 0 {
		return beta, true
	}
	if beta == 0 {
		beta = 0
	}
	if alpha == 0 || k == 0 {
		scale(m, n, beta, c, ldc)
		return beta, true
	}
	return beta, false
}

func sgemmB(kr *kernel, threads int, transA, transB bool, m, n, k int, alpha float32, a []float32, lda int, b matB, beta float32, c []float32, ldc int) {
	beta, done := trivial(m, n, k, alpha, beta, c, ldc)
	if done {
		return
	}
	if threads < 2 || m*n*k < parallelMinWork {
		serial(kr, false, transA, transB, m, n, k, alpha, a, lda, b, beta, c, ldc)
		return
	}
	panelsM := (m + kr.mr - 1) / kr.mr
	// When each goroutine's share of the rows runs in place, there is
	// nothing to pack together: they split the rows and never wait for
	// each other. Tiles with a strided kernel (the 8×48 AVX-512 tile and
	// both AVX2 tiles) do so too when op(B) is a slice or a small Source
	// (splitSourceMax), has too few column blocks for sharedA, and each
	// share is one block of rows: each goroutine packs op(B) itself,
	// which on two threads of a shared machine cost less than sharedB's
	// barriers (stories15M's 512×768×288 ran at 0.93× OpenBLAS instead of
	// 0.70× on the 8×48 tile, Llama-3.2-1B's 512×512×2048 at 1.0× instead
	// of 0.9×; on an AVX2 Zen 4, 512×288×768 at 0.90× instead of 0.61×).
	// Since barriers spin and yield (see barrier), sharedB runs such
	// shapes at about two threads' speed too, but split rows still ran as
	// fast or faster (147–159 GFLOP/s against 157–161 at the tenth
	// percentile).
	share := (panelsM + threads - 1) / threads * kr.mr
	if panelsM >= 2*threads && (directFits(kr, b, share, n, k) || kr.strided != nil && (b.src == nil || n*k <= splitSourceMax) && share <= kr.mc && (n+kr.nc-1)/kr.nc < 2*threads) {
		splitRows(kr, transA, transB, m, n, k, alpha, a, lda, b, beta, c, ldc)
		return
	}
	// With all the rows in one block and enough column blocks, the
	// goroutines pack op(A) together and take blocks of op(B) as they come.
	if panelsM*kr.mr <= kr.mc && (n+kr.nc-1)/kr.nc >= 2*threads {
		sharedA(kr, threads, packedAMax, transA, transB, m, n, k, alpha, a, lda, b, beta, c, ldc)
		return
	}
	// Otherwise preferably the rows are split, at least two panels each, and
	// op(B) packed together.
	if rowThreads := min(threads, panelsM/2); rowThreads >= 2 && (panelsM+rowThreads-1)/rowThreads*kr.mr <= kr.mc {
		sharedB(kr, rowThreads, transA, transB, m, n, k, alpha, a, lda, b, beta, c, ldc)
		return
	}
	// Otherwise (few rows, or too many for one block each) split along tile
	// boundaries, every goroutine packing its own panels, so
	// the operand not split is packed by each: split n (each packs all of
	// op(A), m×k) when m ≤ n, else m (each packs op(B), k×n), unless that
	// leaves too few tiles to share.
	tilesM, tilesN := (m+kr.mr-1)/kr.mr, (n+kr.nr-1)/kr.nr
	splitN := m <= n
	if splitN && tilesN < 2*threads && tilesM > tilesN || !splitN && tilesM < 2*threads && tilesN > tilesM {
		splitN = !splitN
	}
	if splitN {
		parallel.For(n, kr.nr, kr.nr, func(lo, hi int) {
			serial(kr, false, transA, transB, m, hi-lo, k, alpha, a, lda, b.shift(lo, transB), beta, c[lo:], ldc)
		})
		return
	}
	splitRows(kr, transA, transB, m, n, k, alpha, a, lda, b, beta, c, ldc)
}

// splitRows runs the product on goroutines that split the rows of C along
// tile boundaries, each packing its own panels (op(B) then by each).
func splitRows(kr *kernel, transA, transB bool, m, n, k int, alpha float32, a []float32, lda int, b matB, beta float32, c []float32, ldc int) {
	parallel.For(m, kr.mr, kr.mr, func(lo, hi int) {
		aOff := lo * lda
		if transA {
			aOff = lo
		}
		serial(kr, false, transA, transB, hi-lo, n, k, alpha, a[aOff:], lda, b, beta, c[lo*ldc:], ldc)
	})
}

// serial is the blocked product on the calling goroutine. The loops, from
// the outside in: a block of kc steps of the inner dimension (beta applies in
// the first); mc rows of op(A), packed once per block (Ã, in L3); nc columns
// of op(B), packed (B̃, kept in L2); a micro-panel of mr rows of Ã, which
// stays in L1 while the micro-kernel runs it against every micro-panel of
// nr columns of B̃, each streaming from L2. With transC, c holds the
// transpose of the product (sgemmT): C[j, i] is element (i, j).
func serial(kr *kernel, transC, transA, transB bool, m, n, k int, alpha float32, a []float32, lda int, b matB, beta float32, c []float32, ldc int) {
	if directFits(kr, b, m, n, k) {
		direct(kr, transC, transA, transB, m, n, k, alpha, a, lda, b.data, b.ld, beta, c, ldc)
		return
	}
	w := kr.workspace()
	defer kr.put(w)
	mr, nr := kr.mr, kr.nr
	// Blocks of equal size rather than full ones and a remnant: k = 500 is
	// two blocks of 250, not 384 and a short 116 that pays for a pass over C
	// with little work.
	kcMax, mcMax, ncMax := balance(k, kr.kc, kcUnit), balance(m, kr.mc, mr), balance(n, kr.nc, nr)
	for pc := 0; pc < k; pc += kcMax {
		kc := min(kcMax, k-pc)
		bt := beta
		if pc > 0 {
			bt = 1
		}
		for ic := 0; ic < m; ic += mcMax {
			mc := min(mcMax, m-ic)
			packA(w.a, transA, a, lda, ic, mc, pc, kc, mr)
			for jc := 0; jc < n; jc += ncMax {
				nc := min(ncMax, n-jc)
				packB(w, w.b, transB, b, pc, kc, jc, nc, nr)
				for ir := 0; ir < mc; ir += mr {
					ap := &w.a[ir*kc]
					rows := min(mr, mc-ir)
					for jr := 0; jr < nc; jr += nr {
						bp := &w.b[jr*kc]
						cols := min(nr, nc-jr)
						if transC {
							kr.tileT(w, kc, ap, bp, rows, cols, alpha, bt, c[(jc+jr)*ldc+ic+ir:], ldc)
							continue
						}
						ci := (ic+ir)*ldc + jc + jr
						kr.tile(w, kc, ap, bp, rows, cols, alpha, bt, c[ci:], ldc)
					}
				}
			}
		}
	}
}

// directFits reports whether serial runs an m×n×k product in place
// (direct): the tile has a strided kernel, op(B) is a slice, the operands
// are at most directMaxElems and a block of op(B) fits the workspace.
func directFits(kr *kernel, b matB, m, n, k int) bool {
	return kr.strided != nil && b.src == nil && m*k+k*n <= directMaxElems && (n+kr.nr)*min(k, kr.kc) <= kr.kc*kr.nc
}

// directMaxElems is the most elements of op(A) and op(B) together that
// direct reads in place (4 MiB). The panel of op(A) in use (mr×kc) stays in
// L1 whatever the size, and serial also requires a block of op(B) (kc×n) to
// fit the workspace, which keeps it in L2; in BenchmarkSgemm the products
// of 512×288×768 (the MLP's down projection and its input gradient) ran
// 12–19% faster in place than packed, on one thread.
const directMaxElems = 1 << 20

// direct is serial for a tile with a strided kernel, on a product small
// enough for its operands to stay in cache: the kernel reads op(A), and
// op(B) unless it is stored transposed, where they lie. Packing is then
// left to the edges (a last panel of fewer than mr rows or nr columns,
// padded) and to a transposed op(B), whose columns the kernel cannot read
// as rows. In the products of an attention head (128×48 by 128 steps) or
// of a LoRA factor, each packed panel would be read once or a few times,
// and packing cost a third of the time on AVX-512; on AVX2 the three
// products of an attention head ran 1.16–1.53× as fast in place as packed
// (6×16), those of LoRA's factors with 8 columns or rows 1.95–2.1× (12×8).
// The blocks of the inner dimension, the kernel's arithmetic and the edge
// tiles' scratch are serial's: the result has the same bits.
func direct(kr *kernel, transC, transA, transB bool, m, n, k int, alpha float32, a []float32, lda int, b []float32, ldb int, beta float32, c []float32, ldc int) {
	w := kr.workspace()
	defer kr.put(w)
	mr, nr := kr.mr, kr.nr
	kcMax := balance(k, kr.kc, kcUnit)
	// Element (i, p) of op(A) is at a[i·ars + p·aps].
	ars, aps := lda, 1
	if transA {
		ars, aps = 1, lda
	}
	fullN := n / nr * nr
	for pc := 0; pc < k; pc += kcMax {
		kc := min(kcMax, k-pc)
		bt := beta
		if pc > 0 {
			bt = 1
		}
		// A transposed op(B) is packed whole, a stored one only at its
		// edge: w.b holds kc×n (serial checks).
		if transB {
			packSliceB(w.b, true, b, ldb, pc, kc, 0, n, nr)
		} else if fullN < n {
			packSliceB(w.b, false, b, ldb, pc, kc, fullN, n-fullN, nr)
		}
		for ir := 0; ir < m; ir += mr {
			rows := min(mr, m-ir)
			ap, rs, ps := &a[ir*ars+pc*aps], ars, aps
			if rows < mr {
				packA(w.a, transA, a, lda, ir, rows, pc, kc, mr)
				ap, rs, ps = &w.a[0], 1, mr
			}
			for jr := 0; jr < n; jr += nr {
				cols := min(nr, n-jr)
				var bp *float32
				bs := nr
				switch {
				case transB:
					bp = &w.b[jr*kc]
				case cols < nr:
					bp = &w.b[0]
				default:
					bp, bs = &b[pc*ldb+jr], ldb
				}
				switch {
				case transC:
					kr.strided(kc, ap, bp, &w.tile[0], nr, alpha, 0, rs, ps, bs)
					mergeTileT(w.tile, nr, rows, cols, bt, c[jr*ldc+ir:], ldc)
				case rows == mr && cols == nr:
					kr.strided(kc, ap, bp, &c[ir*ldc+jr], ldc, alpha, bt, rs, ps, bs)
				default:
					kr.strided(kc, ap, bp, &w.tile[0], nr, alpha, 0, rs, ps, bs)
					mergeTile(w.tile, nr, rows, cols, bt, c[ir*ldc+jr:], ldc)
				}
			}
		}
	}
}

// sharedB is the product on threads goroutines that split the rows of C,
// each holding its rows of op(A) packed in one block (at most kr.mc rows),
// and that pack each block of op(B) together into one shared B̃: no operand
// is packed twice. Two barriers per block of B̃ keep it from being read
// before it is complete or overwritten while in use.
func sharedB(kr *kernel, threads int, transA, transB bool, m, n, k int, alpha float32, a []float32, lda int, b matB, beta float32, c []float32, ldc int) {
	shared := kr.workspace()
	defer kr.put(shared)
	mr, nr := kr.mr, kr.nr
	kcMax, ncMax := balance(k, kr.kc, kcUnit), balance(n, kr.nc, nr)
	bar := newBarrier(threads)
	units := (m + mr - 1) / mr
	work := func(id int) {
		lo, hi := units*id/threads*mr, min(m, units*(id+1)/threads*mr)
		w := kr.workspace()
		defer kr.put(w)
		for pc := 0; pc < k; pc += kcMax {
			kc := min(kcMax, k-pc)
			bt := beta
			if pc > 0 {
				bt = 1
			}
			packA(w.a, transA, a, lda, lo, hi-lo, pc, kc, mr)
			for jc := 0; jc < n; jc += ncMax {
				nc := min(ncMax, n-jc)
				panels := (nc + nr - 1) / nr
				p0, p1 := panels*id/threads, panels*(id+1)/threads
				if p1 > p0 {
					packB(w, shared.b[p0*nr*kc:], transB, b, pc, kc, jc+p0*nr, min(nc, p1*nr)-p0*nr, nr)
				}
				bar.wait()
				for ir := lo; ir < hi; ir += mr {
					ap := &w.a[(ir-lo)*kc]
					rows := min(mr, hi-ir)
					for jr := 0; jr < nc; jr += nr {
						bp := &shared.b[jr*kc]
						cols := min(nr, nc-jr)
						ci := ir*ldc + jc + jr
						kr.tile(w, kc, ap, bp, rows, cols, alpha, bt, c[ci:], ldc)
					}
				}
				bar.wait()
			}
		}
	}
	runWorkers(threads, work)
}

// packedAMax is the most elements of op(A) that sharedA packs at a time:
// 2 MiB, which stays in L3 while each block of C's columns runs through it.
// With 512 rows it spans two blocks of the inner dimension: a Llama-3.2-1B
// head's forward product passes over its 263 MB of logits 3 times instead of
// 6, the gate and up projections' input-gradient products over their output
// 11 times instead of 22. Packing whole inner dimensions of 2,048 and 8,192
// (4 and 17 MiB) measured no faster on the block linears' shapes, and slower
// on some, on a shared machine.
const packedAMax = 1 << 19

// sharedA is the product on threads goroutines that pack op(A), all m rows
// (at most kr.mc) over as many blocks of the inner dimension as maxPacked
// elements hold (a span, at least one block), together
// into one shared buffer, then take the blocks of nc columns of C one at a
// time from a counter and run each through those blocks of the inner
// dimension, packing their own B̃. No operand is packed twice; each block of
// C is finished while it is in cache, where one pass over all of C per
// block of the inner dimension went to memory (the 263 MB of logits of a
// Llama 3 head, the 16 MB output of an MLP projection); and the goroutines
// meet at two barriers per span of blocks rather than per block, so that
// one the system deschedules seldom holds up the other, which takes its
// share. Each column of C sums the blocks of the inner dimension in order,
// as serial does: the result has the same bits.
func sharedA(kr *kernel, threads, maxPacked int, transA, transB bool, m, n, k int, alpha float32, a []float32, lda int, b matB, beta float32, c []float32, ldc int) {
	mr, nr := kr.mr, kr.nr
	kcMax, ncMax := balance(k, kr.kc, kcUnit), balance(n, kr.nc, nr)
	panels := (m + mr - 1) / mr
	rows := panels * mr
	// A span of the inner dimension: whole blocks, at least one.
	span := max(1, maxPacked/(rows*kcMax)) * kcMax
	// The block of op(A) at inner offset pc within the span starting at s
	// holds its panels at packed[rows·(pc−s):], as packA lays them out for
	// rows [0, m).
	packed := kr.packedA(rows * min(span, k))
	defer kr.putPackedA(packed)
	blocks := (n + ncMax - 1) / ncMax
	next := make([]atomic.Int32, (k+span-1)/span)
	bar := newBarrier(threads)
	work := func(id int) {
		p0, p1 := panels*id/threads*mr, min(m, panels*(id+1)/threads*mr)
		w := kr.workspace()
		defer kr.put(w)
		for s, step := 0, 0; s < k; s, step = s+span, step+1 {
			end := min(k, s+span)
			if s > 0 {
				bar.wait() // the span before is done with packed
			}
			for pc := s; pc < end && p1 > p0; pc += kcMax {
				kc := min(kcMax, end-pc)
				packA(packed[rows*(pc-s)+p0*kc:], transA, a, lda, p0, p1-p0, pc, kc, mr)
			}
			bar.wait()
			for j := int(next[step].Add(1)) - 1; j < blocks; j = int(next[step].Add(1)) - 1 {
				jc := j * ncMax
				nc := min(ncMax, n-jc)
				for pc := s; pc < end; pc += kcMax {
					kc := min(kcMax, end-pc)
					bt := beta
					if pc > 0 {
						bt = 1
					}
					packB(w, w.b, transB, b, pc, kc, jc, nc, nr)
					ap := packed[rows*(pc-s):]
					for jr := 0; jr < nc; jr += nr {
						bp := &w.b[jr*kc]
						cols := min(nr, nc-jr)
						for ir := 0; ir < m; ir += mr {
							ci := ir*ldc + jc + jr
							kr.tile(w, kc, &ap[ir*kc], bp, min(mr, m-ir), cols, alpha, bt, c[ci:], ldc)
						}
					}
				}
			}
		}
	}
	runWorkers(threads, work)
}

// runWorkers runs work(0) … work(threads-1) concurrently, work(0) on the
// calling goroutine, and returns when all have returned. Every id must run:
// the workers wait for each other at barriers.
func runWorkers(threads int, work func(id int)) {
	var wg sync.WaitGroup
	for id := 1; id < threads; id++ {
		wg.Go(func() { work(id) })
	}
	parallel.YieldToStarted()
	work(0)
	wg.Wait()
}

// barrier makes n goroutines wait for each other, again and again. One
// that arrives early polls for up to barrierSpin rounds before it parks,
// and the last to arrive, having woken any that parked, yields its P to
// them (parallel.YieldToStarted). With a condition variable alone, each
// wait parked the early goroutine, and the one woken waited in the next
// slot of the waker's P, which the idle P takes only after a sleep of
// about 50 µs: on two threads of an AVX2 Zen 4, sharedB ran 512×288×288
// and 512×288×768 at one thread's speed (82–101 GFLOP/s at the tenth
// percentile of a few hundred runs), and with the spin and the yield
// mostly at two threads' (147–159, on a machine loaded by other work).
type barrier struct {
	n       int32
	arrived atomic.Int32
	round   atomic.Uint32
	mu      sync.Mutex // held to change round, so that a wait does not miss its wake-up
	cond    sync.Cond
}

// barrierSpin is the number of polls a goroutine makes at a barrier
// before it parks: tens of microseconds, about what packing a block of
// op(B) or a goroutine's start takes.
const barrierSpin = 1 << 14

func newBarrier(n int) *barrier {
	b := &barrier{n: int32(n)}
	b.cond.L = &b.mu
	return b
}

// wait returns once all n goroutines have called it in this round.
func (b *barrier) wait() {
	round := b.round.Load()
	if b.arrived.Add(1) == b.n {
		b.arrived.Store(0)
		b.mu.Lock()
		b.round.Add(1)
		b.mu.Unlock()
		b.cond.Broadcast()
		parallel.YieldToStarted()
		return
	}
	for range barrierSpin {
		if b.round.Load() != round {
			return
		}
	}
	b.mu.Lock()
	for b.round.Load() == round {
		b.cond.Wait()
	}
	b.mu.Unlock()
}

// balance returns the block size for n elements split into as few blocks of
// at most max as possible, of equal size rounded up to a multiple of unit
// (max is itself a multiple of unit).
func balance(n, max, unit int) int {
	blocks := (n + max - 1) / max
	size := (n + blocks - 1) / blocks
	return (size + unit - 1) / unit * unit
}

// tile runs the micro-kernel on one tile of rows×cols of C: in place when
// the tile is whole, else through w's scratch tile, of which only the rows×cols
// corner is merged into C (C may end at the tile's edge).
func (kr *kernel) tile(w *workspace, kc int, ap, bp *float32, rows, cols int, alpha, beta float32, c []float32, ldc int) {
	if rows == kr.mr && cols == kr.nr {
		kr.micro(kc, ap, bp, &c[0], ldc, alpha, beta)
		return
	}
	kr.micro(kc, ap, bp, &w.tile[0], kr.nr, alpha, 0)
	mergeTile(w.tile, kr.nr, rows, cols, beta, c, ldc)
}

// tileT is tile for a tile of Cᵀ held in c: the micro-kernel writes w's
// scratch tile, which is transposed into C.
func (kr *kernel) tileT(w *workspace, kc int, ap, bp *float32, rows, cols int, alpha, beta float32, c []float32, ldc int) {
	kr.micro(kc, ap, bp, &w.tile[0], kr.nr, alpha, 0)
	mergeTileT(w.tile, kr.nr, rows, cols, beta, c, ldc)
}

// mergeTileT stores the transpose of the rows×cols corner of t (already
// scaled by alpha) into C: C[j, i] = t[i, j] + beta·C[j, i], not reading C
// when beta is 0.
func mergeTileT(t []float32, ldt, rows, cols int, beta float32, c []float32, ldc int) {
	if mergeBlocksT(t, ldt, rows, cols, beta, c, ldc) {
		return
	}
	for j := range cols {
		dst := c[j*ldc : j*ldc+rows]
		for i := range dst {
			v := t[i*ldt+j]
			if beta != 0 {
				v += beta * dst[i]
			}
			dst[i] = v
		}
	}
}

// mergeTile stores the rows×cols corner of an edge tile t (already scaled by
// alpha) into C: C = t + beta·C, not reading C when beta is 0.
func mergeTile(t []float32, ldt, rows, cols int, beta float32, c []float32, ldc int) {
	for i := range rows {
		src := t[i*ldt : i*ldt+cols]
		dst := c[i*ldc : i*ldc+cols]
		if beta == 0 {
			copy(dst, src)
			continue
		}
		for j, v := range src {
			dst[j] = v + beta*dst[j]
		}
	}
}

// scale sets C = beta·C, not reading C when beta is 0.
func scale(m, n int, beta float32, c []float32, ldc int) {
	for i := range m {
		row := c[i*ldc : i*ldc+n]
		switch beta {
		case 0:
			clear(row)
		case 1:
		default:
			for j := range row {
				row[j] *= beta
			}
		}
	}
}

// check panics with a message naming the first argument that is out of
// range: these are programming errors, as in any BLAS.
func check(transA, transB bool, m, n, k int, a []float32, lda int, b []float32, ldb int, c []float32, ldc int) {
	checkDims(m, n, k)
	checkOp("A", transA, m, k, a, lda)
	checkOp("B", transB, k, n, b, ldb)
	checkOp("C", false, m, n, c, ldc)
}

// checkSource is check for SgemmSource.
func checkSource(transA bool, m, n, k int, a []float32, lda int, src Source, c []float32, ldc int) {
	checkDims(m, n, k)
	if src == nil {
		panic("gemm: nil Source")
	}
	checkOp("A", transA, m, k, a, lda)
	checkOp("C", false, m, n, c, ldc)
}

func checkDims(m, n, k int) {
	if m < 0 || n < 0 || k < 0 {
		panic(fmt.Sprintf("gemm: negative dimension m=%d n=%d k=%d", m, n, k))
	}
}

// checkOp checks the matrix s holding op(X), rows×cols: X itself, or its
// transpose stored cols×rows when trans is set.
func checkOp(name string, trans bool, rows, cols int, s []float32, ld int) {
	if trans {
		rows, cols = cols, rows
	}
	if ld < max(1, cols) {
		panic(fmt.Sprintf("gemm: leading dimension of %s is %d, less than its %d columns", name, ld, cols))
	}
	if rows == 0 || cols == 0 {
		return
	}
	if need := (rows-1)*ld + cols; len(s) < need {
		panic(fmt.Sprintf("gemm: %s has %d elements, want at least %d for %d×%d with leading dimension %d", name, len(s), need, rows, cols, ld))
	}
}
