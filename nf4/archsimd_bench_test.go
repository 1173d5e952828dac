//go:build goexperiment.simd && amd64

package nf4

// The AVX-512 kernels written with simd/archsimd (GOEXPERIMENT=simd) before
// the assembly ones, kept here to measure both side by side.

import (
	"fmt"
	"simd/archsimd"

	"github.com/golora/golora/internal/cpu"
	"testing"
)

var (
	dupLow      = [16]int8{0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6, 7, 7}
	dupHigh     = [16]int8{8, 8, 9, 9, 10, 10, 11, 11, 12, 12, 13, 13, 14, 14, 15, 15}
	nibbleShift = [16]uint32{4, 0, 4, 0, 4, 0, 4, 0, 4, 0, 4, 0, 4, 0, 4, 0}
)

// archsimdSegment adds the products of the weights at [e, eEnd) of row r.
func (m *Matrix) archsimdSegment(y, x []float32, n, r, rowStart, e, eEnd int) {
	for i := range n {
		var acc [lanes]float32
		m.dotLanesScalar(&acc, x[i*m.cols+e-rowStart:i*m.cols+eEnd-rowStart], e)
		y[i*m.rows+r] += foldLanes(&acc)
	}
}

func sumLanes(v archsimd.Float32x16) float32 {
	h := v.GetLo().Add(v.GetHi())
	q := h.GetLo().Add(h.GetHi())
	return (q.GetElem(0) + q.GetElem(1)) + (q.GetElem(2) + q.GetElem(3))
}

// BenchmarkArchsimd compares the archsimd and assembly AVX-512 kernels.
func BenchmarkArchsimd(b *testing.B) {
	if !archsimd.X86.AVX512() {
		b.Skip("no AVX-512")
	}
	for _, shape := range benchShapes {
		rows, cols := shape[0], shape[1]
		m, err := Quantize(gaussian(2, rows*cols, 0.02), rows, cols, Options{})
		if err != nil {
			b.Fatal(err)
		}
		dst := make([]float32, rows*cols)
		m.dequantRangeAt(cpu.AVX512, dst, 0, rows*cols)
		b.Run(fmt.Sprintf("%dx%d/dequantize/archsimd", rows, cols), func(b *testing.B) {
			for b.Loop() {
				m.dequantRangeAVX512(dst, 0, rows*cols)
				archsimd.ClearAVXUpperBits()
			}
			reportGBs(b, 4*rows*cols)
		})
		b.Run(fmt.Sprintf("%dx%d/dequantize/asm", rows, cols), func(b *testing.B) {
			for b.Loop() {
				m.dequantRangeAt(cpu.AVX512, dst, 0, rows*cols)
			}
			reportGBs(b, 4*rows*cols)
		})
		for _, n := range []int{1, 4} {
			x := gaussian(3, n*cols, 1)
			y := make([]float32, n*rows)
			b.Run(fmt.Sprintf("%dx%d/mulT-n=%d/archsimd", rows, cols, n), func(b *testing.B) {
				for b.Loop() {
					m.mulTRangeAVX512(y, x, n, 0, rows)
					archsimd.ClearAVXUpperBits()
				}
				reportGBs(b, 4*rows*cols)
			})
			b.Run(fmt.Sprintf("%dx%d/mulT-n=%d/asm", rows, cols, n), func(b *testing.B) {
				for b.Loop() {
					m.mulTRangeAt(cpu.AVX512, y, x, n, 0, rows)
				}
				reportGBs(b, 4*rows*cols)
			})
		}
	}
}

// decodeWeights turns 16 packed bytes (32 codes) into the two vectors of
// their values in table: lanes 0..15 and 16..31.
func decodeWeights(table archsimd.Float32x16, bytes archsimd.Uint8x16,
	low, high archsimd.Int8x16, shift archsimd.Uint32x16) (archsimd.Float32x16, archsimd.Float32x16) {
	w0 := table.Permute(bytes.PermuteOrZero(low).ExtendToUint32().ShiftRight(shift))
	w1 := table.Permute(bytes.PermuteOrZero(high).ExtendToUint32().ShiftRight(shift))
	return w0, w1
}

// dequantRangeAVX512 is dequantRangeScalar with the 32-aligned part of the
// range decoded 32 elements per step; the unaligned ends, each inside one
// block, use the scalar code.
func (m *Matrix) dequantRangeAVX512(dst []float32, e0, e1 int) {
	a0, a1 := (e0+31)&^31, e1&^31
	if a1-a0 < 32 {
		m.dequantRangeScalar(dst[:e1-e0], e0, e1)
		return
	}
	if e0 < a0 {
		m.dequantRangeScalar(dst[:a0-e0], e0, a0)
	}
	if a1 < e1 {
		m.dequantRangeScalar(dst[a1-e0:e1-e0], a1, e1)
	}
	book := archsimd.LoadFloat32x16(&codebook)
	low := archsimd.LoadInt8x16(&dupLow)
	high := archsimd.LoadInt8x16(&dupHigh)
	shift := archsimd.LoadUint32x16(&nibbleShift)
	src := m.packed[a0/2 : a1/2]
	out := dst[a0-e0 : a1-e0]
	for e := a0; e < a1; {
		b := e >> m.blockShift
		end := min(a1, (b+1)<<m.blockShift)
		table := book.Mul(archsimd.BroadcastFloat32x16(m.scale(b)))
		for ; e < end && len(src) >= 16 && len(out) >= 32; e += 32 {
			w0, w1 := decodeWeights(table, archsimd.LoadUint8x16((*[16]uint8)(src)), low, high, shift)
			o := (*[32]float32)(out)
			w0.Store((*[16]float32)(o[:16]))
			w1.Store((*[16]float32)(o[16:]))
			src, out = src[16:], out[32:]
		}
	}
}

// mulTRangeAVX512 computes rows [r0, r1) of y = x·Wᵀ, one weight row at a
// time. (Cutting the columns into tiles that keep x in L1 was measured
// slower: the strided walk over the codes costs more than reading x from L2.)
func (m *Matrix) mulTRangeAVX512(y, x []float32, n, r0, r1 int) {
	for i := range n {
		clear(y[i*m.rows+r0 : i*m.rows+r1])
	}
	for r := r0; r < r1; r++ {
		m.mulTRowAVX512(y, x, n, r, r*m.cols, (r+1)*m.cols)
	}
}

// mulTRowAVX512 adds to y[i·rows+r] the products of the rows of x with the
// weights at flat elements [e0, e1) of row r. The 32-aligned middle is
// decoded 32 codes at a time and multiplied into up to four rows of x at
// once; the unaligned ends use the scalar code.
func (m *Matrix) mulTRowAVX512(y, x []float32, n, r, e0, e1 int) {
	cols, rows := m.cols, m.rows
	rowStart := r * cols
	a0, a1 := (e0+31)&^31, e1&^31
	if a1-a0 < 32 {
		m.archsimdSegment(y, x, n, r, rowStart, e0, e1)
		return
	}
	m.archsimdSegment(y, x, n, r, rowStart, e0, a0)
	m.archsimdSegment(y, x, n, r, rowStart, a1, e1)
	var scales [64]float32
	for p0 := a0; p0 < a1; {
		first := p0 >> m.blockShift
		count := min((a1-1)>>m.blockShift-first+1, 64)
		p1 := min(a1, (first+count)<<m.blockShift)
		for k := range count {
			scales[k] = m.scale(first + k)
		}
		piece := pieceAVX512{
			packed: m.packed[p0/2 : p1/2],
			scales: scales[:count],
			first:  p0 - first<<m.blockShift,
			block:  1 << m.blockShift,
		}
		c0, c1 := p0-rowStart, p1-rowStart
		i := 0
		for ; i+4 <= n; i += 4 {
			s0, s1, s2, s3 := piece.dot4(
				x[i*cols+c0:i*cols+c1], x[(i+1)*cols+c0:(i+1)*cols+c1],
				x[(i+2)*cols+c0:(i+2)*cols+c1], x[(i+3)*cols+c0:(i+3)*cols+c1])
			y[i*rows+r] += s0
			y[(i+1)*rows+r] += s1
			y[(i+2)*rows+r] += s2
			y[(i+3)*rows+r] += s3
		}
		for ; i < n; i++ {
			y[i*rows+r] += piece.dot1(x[i*cols+c0 : i*cols+c1])
		}
		p0 = p1
	}
}

// pieceAVX512 is a 32-aligned run of one weight row: its packed codes, the
// absmax of each block it touches, and where it starts in its first block.
type pieceAVX512 struct {
	packed []byte
	scales []float32
	first  int // offset of the run in its first block
	block  int // block size
}

// dot1 returns the dot product of the run's weights with x[:2·len(packed)].
func (p *pieceAVX512) dot1(x []float32) float32 {
	low := archsimd.LoadInt8x16(&dupLow)
	high := archsimd.LoadInt8x16(&dupHigh)
	shift := archsimd.LoadUint32x16(&nibbleShift)
	book := archsimd.LoadFloat32x16(&codebook)
	var acc0, acc1 archsimd.Float32x16
	packed := p.packed
	todo := p.block - p.first
	for _, s := range p.scales {
		table := book.Mul(archsimd.BroadcastFloat32x16(s))
		for ; todo > 0 && len(packed) >= 16; todo -= 32 {
			w0, w1 := decodeWeights(table, archsimd.LoadUint8x16((*[16]uint8)(packed)), low, high, shift)
			packed = packed[16:]
			v := (*[32]float32)(x)
			x = x[32:]
			acc0 = w0.MulAdd(archsimd.LoadFloat32x16((*[16]float32)(v[:16])), acc0)
			acc1 = w1.MulAdd(archsimd.LoadFloat32x16((*[16]float32)(v[16:])), acc1)
		}
		todo = p.block
	}
	return sumLanes(acc0.Add(acc1))
}

// dot4 is dot1 for four rows of x sharing each decoded weight.
func (p *pieceAVX512) dot4(x0, x1, x2, x3 []float32) (s0, s1, s2, s3 float32) {
	low := archsimd.LoadInt8x16(&dupLow)
	high := archsimd.LoadInt8x16(&dupHigh)
	shift := archsimd.LoadUint32x16(&nibbleShift)
	book := archsimd.LoadFloat32x16(&codebook)
	var acc0, acc1, acc2, acc3 archsimd.Float32x16
	packed := p.packed
	todo := p.block - p.first
	for _, s := range p.scales {
		table := book.Mul(archsimd.BroadcastFloat32x16(s))
		for ; todo > 0 && len(packed) >= 16; todo -= 32 {
			w0, w1 := decodeWeights(table, archsimd.LoadUint8x16((*[16]uint8)(packed)), low, high, shift)
			packed = packed[16:]
			v0, v1, v2, v3 := (*[32]float32)(x0), (*[32]float32)(x1), (*[32]float32)(x2), (*[32]float32)(x3)
			x0, x1, x2, x3 = x0[32:], x1[32:], x2[32:], x3[32:]
			acc0 = w0.MulAdd(archsimd.LoadFloat32x16((*[16]float32)(v0[:16])), acc0)
			acc1 = w0.MulAdd(archsimd.LoadFloat32x16((*[16]float32)(v1[:16])), acc1)
			acc2 = w0.MulAdd(archsimd.LoadFloat32x16((*[16]float32)(v2[:16])), acc2)
			acc3 = w0.MulAdd(archsimd.LoadFloat32x16((*[16]float32)(v3[:16])), acc3)
			acc0 = w1.MulAdd(archsimd.LoadFloat32x16((*[16]float32)(v0[16:])), acc0)
			acc1 = w1.MulAdd(archsimd.LoadFloat32x16((*[16]float32)(v1[16:])), acc1)
			acc2 = w1.MulAdd(archsimd.LoadFloat32x16((*[16]float32)(v2[16:])), acc2)
			acc3 = w1.MulAdd(archsimd.LoadFloat32x16((*[16]float32)(v3[16:])), acc3)
		}
		todo = p.block
	}
	return sumLanes(acc0), sumLanes(acc1), sumLanes(acc2), sumLanes(acc3)
}
