package gemm_test

import (
	"flag"
	"fmt"
	"math/rand/v2"
	"runtime"
	"testing"
	"time"

	"github.com/golora/golora/internal/blas"
	"github.com/golora/golora/internal/gemm"
	gonumblas "gonum.org/v1/gonum/blas"
	"gonum.org/v1/gonum/blas/gonum"
)

// benchShapes are the products of a training step (m×n×k of C = op(A)·op(B),
// op(A) m×k; N/T says whether each operand is stored transposed). The
// linears keep their weights [out, in], so the forward product is x·Wᵀ (NT),
// the input gradient dy·W (NN) and a weight gradient dyᵀ·x (TN).
var benchShapes = []struct {
	name           string
	m, n, k        int
	transA, transB bool
}{
	// stories15M (dim 288, hidden 768, vocabulary 32000), 512 tokens.
	{"stories15M/w1", 512, 768, 288, false, true},
	{"stories15M/w2", 512, 288, 768, false, true},
	{"stories15M/wq", 512, 288, 288, false, true},
	{"stories15M/w1-dx", 512, 288, 768, false, false},
	{"stories15M/wq-dw", 288, 288, 512, true, false},
	{"stories15M/output", 512, 32000, 288, false, true},
	{"stories15M/output-dx", 512, 288, 32000, false, false},
	{"stories15M/output-dw", 32000, 288, 512, true, false},
	// LoRA rank 8 on a 288×288 linear: x·Aᵀ, (x·Aᵀ)·Bᵀ, the gradient
	// through B, dB, dA and the gradient through A.
	{"stories15M/lora-xa", 512, 8, 288, false, true},
	{"stories15M/lora-delta", 512, 288, 8, false, true},
	{"stories15M/lora-dxa", 512, 8, 288, false, false},
	{"stories15M/lora-db", 288, 8, 512, true, false},
	{"stories15M/lora-da", 8, 288, 512, true, false},
	{"stories15M/lora-dx", 512, 288, 8, false, false},
	// Attention of one head (128 positions, head dimension 48): scores
	// Q·Kᵀ, the weighted values P·V and the value gradient Pᵀ·dO.
	{"stories15M/attn-scores", 128, 128, 48, false, true},
	{"stories15M/attn-pv", 128, 48, 128, false, false},
	{"stories15M/attn-dv", 128, 48, 128, true, false},
	// Llama-3.2-1B (dim 2048, hidden 8192), 512 tokens.
	{"llama1B/wq", 512, 2048, 2048, false, true},
	{"llama1B/wk", 512, 512, 2048, false, true},
	{"llama1B/w1", 512, 8192, 2048, false, true},
	{"llama1B/w2", 512, 2048, 8192, false, true},
	{"llama1B/wq-dx", 512, 2048, 2048, false, false},
	{"llama1B/wk-dx", 512, 2048, 512, false, false},
	{"llama1B/w1-dx", 512, 2048, 8192, false, false},
	{"llama1B/w2-dx", 512, 8192, 2048, false, false},
	{"square/512", 512, 512, 512, false, false},
}

// gonumAll runs gonum on every shape; by default it runs only on products
// of at most 2 GFLOP, as it takes seconds on the larger ones.
var gonumAll = flag.Bool("gonum.all", false, "BenchmarkSgemm: run gonum's Sgemm on the large shapes too")

// BenchmarkSgemm runs each shape with golora's Sgemm, gonum's pure-Go Sgemm
// and, built with -tags openblas, OpenBLAS (one thread per call, rows split
// over goroutines as golora runs it), on 1 and 2 threads, side by side. It
// reports each one's GFLOP/s and golora's speed relative to each other one
// (ours/gonum, ours/openblas: above 1 means golora is faster).
func BenchmarkSgemm(b *testing.B) {
	type impl struct {
		name string
		f    func(tA, tB bool, m, n, k int, a []float32, lda int, bm []float32, ldb int, c []float32, ldc int)
	}
	impls := []impl{
		{"gemm-" + gemm.Level().String(), func(tA, tB bool, m, n, k int, a []float32, lda int, bm []float32, ldb int, c []float32, ldc int) {
			gemm.Sgemm(tA, tB, m, n, k, 1, a, lda, bm, ldb, 0, c, ldc)
		}},
		{"gonum", func(tA, tB bool, m, n, k int, a []float32, lda int, bm []float32, ldb int, c []float32, ldc int) {
			gonum.Implementation{}.Sgemm(trans(tA), trans(tB), m, n, k, 1, a, lda, bm, ldb, 0, c, ldc)
		}},
	}
	if blas.Name() == "openblas" {
		impls = append(impls, impl{"openblas", func(tA, tB bool, m, n, k int, a []float32, lda int, bm []float32, ldb int, c []float32, ldc int) {
			blas.ParallelSgemm(tA, tB, m, n, k, 1, a, lda, bm, ldb, 0, c, ldc)
		}})
	}
	rng := rand.New(rand.NewPCG(1, 1))
	for _, s := range benchShapes {
		lda, ldb := s.k, s.n
		if s.transA {
			lda = s.m
		}
		if s.transB {
			ldb = s.k
		}
		op := "N"
		if s.transA {
			op = "T"
		}
		if s.transB {
			op += "T"
		} else {
			op += "N"
		}
		flop := 2 * float64(s.m) * float64(s.n) * float64(s.k)
		for _, threads := range []int{1, 2} {
			b.Run(fmt.Sprintf("%s/%dx%dx%d/%s/threads=%d", s.name, s.m, s.n, s.k, op, threads), func(b *testing.B) {
				defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(threads))
				a := make([]float32, s.m*s.k)
				bm := make([]float32, s.k*s.n)
				c := make([]float32, s.m*s.n)
				for i := range a {
					a[i] = rng.Float32() - 0.5
				}
				for i := range bm {
					bm[i] = rng.Float32() - 0.5
				}
				// The implementations take turns within each iteration, so
				// that the load of a shared machine falls on all of them
				// alike; each one's fastest run is reported, the figure
				// least disturbed by other processes.
				best := make([]time.Duration, len(impls))
				for b.Loop() {
					for i, im := range impls {
						if im.name == "gonum" && flop > 2e9 && !*gonumAll {
							continue
						}
						t0 := time.Now()
						im.f(s.transA, s.transB, s.m, s.n, s.k, a, lda, bm, ldb, c, s.n)
						if d := time.Since(t0); best[i] == 0 || d < best[i] {
							best[i] = d
						}
					}
				}
				for i, im := range impls {
					if best[i] == 0 {
						continue
					}
					b.ReportMetric(flop/best[i].Seconds()/1e9, im.name+"-GFLOP/s")
					if i > 0 {
						b.ReportMetric(best[i].Seconds()/best[0].Seconds(), "ours/"+im.name)
					}
				}
			})
		}
	}
}

func trans(t bool) gonumblas.Transpose {
	if t {
		return gonumblas.Trans
	}
	return gonumblas.NoTrans
}
