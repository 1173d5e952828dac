// Command asmgen generates the AVX2 and AVX-512 micro-kernels of package gemm
// with avo. It lives in its own module so that golora itself does not depend
// on avo; the generated files are committed. Regenerate with
//
//	cd internal/gemm && go generate
//
// which runs
//
//	cd asmgen && go run . -out ../kernel_amd64.s -stubs ../kernel_amd64.go -pkg gemm
package main

import (
	"fmt"

	. "github.com/mmcloughlin/avo/build"
	. "github.com/mmcloughlin/avo/operand"
	. "github.com/mmcloughlin/avo/reg"
)

// The signature every micro-kernel shares (see gemm's kernel type).
const signature = "func(k int, a, b, c *float32, ldc int, alpha, beta float32)"

// stridedSignature is the signature of a kernel that reads its operands
// where they lie: element (i, p) of Ã at a[i·ars + p·aps], row p of B̃ at
// b[p·bps:] (see gemm's stridedKernel).
const stridedSignature = "func(k int, a, b, c *float32, ldc int, alpha, beta float32, ars, aps, bps int)"

func main() {
	ConstraintExpr("amd64")
	// AVX-512: 14 rows × 32 columns (two zmm) of C in 28 accumulators, two
	// registers for the row of B, and A's elements broadcast straight from
	// memory by the FMA itself: 30 of the 32 zmm registers.
	microKernel("kernel14x32AVX512", 14, 2, 16, zmmRegs, true, false)
	// AVX2: 6 rows × 16 columns (two ymm) in 12 accumulators, two for B and
	// one for the broadcast element of A: 15 of the 16 ymm registers.
	microKernel("kernel6x16AVX2", 6, 2, 8, ymmRegs, false, false)
	// The AVX2 tiles also read their operands with strides, for the
	// products gemm runs in place (an attention head's, LoRA's), as the
	// 8×48 tile below does.
	microKernel("kernel6x16StridedAVX2", 6, 2, 8, ymmRegs, false, true)
	// Narrow tiles, for products with few columns (LoRA's rank-8 factors,
	// an attention head's 48 dimensions), where the wide tiles would mostly
	// multiply padding: one vector of B per step against 28 rows (16
	// columns in zmm, 8 in the 32 EVEX-encoded ymm registers), and for AVX2
	// 12 rows of 8 columns (12 accumulators, one for B, one broadcast).
	microKernel("kernel28x16AVX512", 28, 1, 16, zmmRegs, true, false)
	microKernel("kernel28x8AVX512", 28, 1, 8, ymmRegs32, true, false)
	microKernel("kernel12x8AVX2", 12, 1, 8, ymmRegs, false, false)
	microKernel("kernel12x8StridedAVX2", 12, 1, 8, ymmRegs, false, true)
	// A short, wide AVX-512 tile: 8 rows × 48 columns (three zmm) in 24
	// accumulators and three for B. It fits products with 48 columns (an
	// attention head) or 8 rows, which is what a product with 8 columns
	// (LoRA's rank) becomes when gemm computes its transpose instead.
	// Each element of Ã is broadcast into a register once for its three
	// multiply-adds, rather than loaded by each (a third of the loads).
	// It reads its operands with strides, so that gemm can run it on
	// op(A) and op(B) where they lie when packing would cost more than it
	// saves (see stridedKernel there).
	microKernel("kernel8x48StridedAVX512", 8, 3, 16, zmmRegs, false, true)
	Generate()
}

func zmmRegs() []VecPhysical {
	return []VecPhysical{Z0, Z1, Z2, Z3, Z4, Z5, Z6, Z7, Z8, Z9, Z10, Z11, Z12, Z13, Z14, Z15,
		Z16, Z17, Z18, Z19, Z20, Z21, Z22, Z23, Z24, Z25, Z26, Z27, Z28, Z29, Z30, Z31}
}

// ymmRegs32 are the ymm registers AVX-512 (VL) can address.
func ymmRegs32() []VecPhysical {
	return []VecPhysical{Y0, Y1, Y2, Y3, Y4, Y5, Y6, Y7, Y8, Y9, Y10, Y11, Y12, Y13, Y14, Y15,
		Y16, Y17, Y18, Y19, Y20, Y21, Y22, Y23, Y24, Y25, Y26, Y27, Y28, Y29, Y30, Y31}
}

func ymmRegs() []VecPhysical {
	return []VecPhysical{Y0, Y1, Y2, Y3, Y4, Y5, Y6, Y7, Y8, Y9, Y10, Y11, Y12, Y13, Y14, Y15}
}

// microKernel emits a kernel computing the mr × (vecs·width) tile
//
//	C = alpha·Ã·B̃ + beta·C   (C is not read when beta's bits are zero)
//
// from a packed panel Ã (k steps of mr consecutive elements) and a packed
// panel B̃ (k steps of vecs·width consecutive elements), C being row-major
// with leading dimension ldc elements. Work is bounded by k, which the caller
// keeps to one cache block so that a goroutine is never stuck here for long.
// A strided kernel (stridedSignature) reads Ã and B̃
// with the strides it is given instead of as packed panels.
func microKernel(name string, mr, vecs, width int, regs func() []VecPhysical, embeddedBroadcast, strided bool) {
	if strided {
		TEXT(name, NOSPLIT, stridedSignature)
	} else {
		TEXT(name, NOSPLIT, signature)
	}
	Pragma("noescape")
	Doc(fmt.Sprintf("%s computes a %d×%d tile of C; see microKernel in asmgen.", name, mr, vecs*width))

	r := regs()
	acc := make([][]VecPhysical, mr)
	for i := range acc {
		acc[i] = r[i*vecs : (i+1)*vecs]
	}
	bv := r[mr*vecs : mr*vecs+vecs]
	// Broadcasts rotate through the registers left over.
	bcasts := r[mr*vecs+vecs:]
	vecBytes := 4 * width

	k := Load(Param("k"), GP64())
	a := Load(Param("a"), GP64())
	b := Load(Param("b"), GP64())
	c := Load(Param("c"), GP64())
	ldc := Load(Param("ldc"), GP64())
	SHLQ(U8(2), ldc)
	// Element i of a step of Ã: at a+4i when packed; strided, at
	// rowBase[i/4] + (i%4)·ars, ars and 3·ars in registers.
	aElem := func(i int) Mem { return Mem{Base: a, Disp: 4 * i} }
	var aStep, bStep Op = U32(4 * mr), U32(4 * vecs * width)
	var rowBase []Register
	if strided {
		ars := Load(Param("ars"), GP64())
		SHLQ(U8(2), ars)
		ars3 := GP64()
		LEAQ(Mem{Base: ars, Index: ars, Scale: 2}, ars3)
		aps := Load(Param("aps"), GP64())
		SHLQ(U8(2), aps)
		bps := Load(Param("bps"), GP64())
		SHLQ(U8(2), bps)
		aStep, bStep = aps, bps
		rowBase = []Register{a}
		for i := 4; i < mr; i += 4 {
			base := GP64()
			LEAQ(Mem{Base: rowBase[len(rowBase)-1], Index: ars, Scale: 4}, base)
			rowBase = append(rowBase, base)
		}
		aElem = func(i int) Mem {
			m := Mem{Base: rowBase[i/4]}
			switch i % 4 {
			case 1:
				m.Index, m.Scale = ars, 1
			case 2:
				m.Index, m.Scale = ars, 2
			case 3:
				m.Index, m.Scale = ars3, 1
			}
			return m
		}
	}

	Comment("Start loading the tile of C: when k is large it has left the",
		"caches since the previous block, and the loads at the end would stall.")
	row := GP64()
	MOVQ(c, row)
	for i := 0; i < mr; i++ {
		for off := 0; off < vecs*vecBytes; off += 64 {
			PREFETCHT0(Mem{Base: row, Disp: off})
		}
		if i < mr-1 {
			ADDQ(ldc, row)
		}
	}

	Comment("Zero the accumulators.")
	for i := range acc {
		for _, v := range acc[i] {
			VXORPS(v, v, v)
		}
	}

	TESTQ(k, k)
	JZ(LabelRef(name + "_store"))
	Label(name + "_loop")
	Comment("One rank-1 update: a row of B̃ times a column of Ã.")
	for j, v := range bv {
		VMOVUPS(Mem{Base: b, Disp: j * vecBytes}, v)
	}
	for i := range acc {
		ai := aElem(i)
		bcast := bcasts[i%len(bcasts)]
		if !embeddedBroadcast {
			VBROADCASTSS(ai, bcast)
		}
		for j, v := range acc[i] {
			if embeddedBroadcast {
				VFMADD231PS_BCST(ai, bv[j], v)
			} else {
				VFMADD231PS(bv[j], bcast, v)
			}
		}
	}
	if strided {
		for _, base := range rowBase {
			ADDQ(aStep, base)
		}
	} else {
		ADDQ(aStep, a)
	}
	ADDQ(bStep, b)
	DECQ(k)
	JNZ(LabelRef(name + "_loop"))

	Label(name + "_store")
	alpha, err := Param("alpha").Resolve()
	if err != nil {
		panic(err)
	}
	beta, err := Param("beta").Resolve()
	if err != nil {
		panic(err)
	}
	// The registers after the accumulators (B̃'s and the broadcast's) are
	// free now.
	alphaV, betaV := r[mr*vecs], r[mr*vecs+1]
	VBROADCASTSS(alpha.Addr, alphaV)
	for i := range acc {
		for _, v := range acc[i] {
			VMULPS(alphaV, v, v)
		}
	}
	betaBits := GP32()
	MOVL(beta.Addr, betaBits)
	TESTL(betaBits, betaBits)
	JZ(LabelRef(name + "_overwrite"))

	Comment("C = alpha·ÃB̃ + beta·C")
	VBROADCASTSS(beta.Addr, betaV)
	MOVQ(c, row)
	for i := range acc {
		for j, v := range acc[i] {
			VFMADD231PS(Mem{Base: row, Disp: j * vecBytes}, betaV, v)
			VMOVUPS(v, Mem{Base: row, Disp: j * vecBytes})
		}
		if i < mr-1 {
			ADDQ(ldc, row)
		}
	}
	VZEROUPPER()
	RET()

	Label(name + "_overwrite")
	Comment("C = alpha·ÃB̃, C never read")
	for i := range acc {
		for j, v := range acc[i] {
			VMOVUPS(v, Mem{Base: c, Disp: j * vecBytes})
		}
		if i < mr-1 {
			ADDQ(ldc, c)
		}
	}
	VZEROUPPER()
	RET()
}
