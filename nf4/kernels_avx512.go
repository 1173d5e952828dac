//go:build goexperiment.simd && amd64

package nf4

import (
	"math"
	"simd/archsimd"
)

// haveAVX512 selects the AVX-512 kernels; it is set once at start-up from the
// CPU features and never changes.
var haveAVX512 = archsimd.X86.AVX512()

// Lookup tables of the vector kernels.
var (
	// dupLow and dupHigh repeat each of bytes 0..7 (or 8..15) twice, so that
	// the two nibbles of a byte land in adjacent 32-bit lanes.
	dupLow  = [16]int8{0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6, 7, 7}
	dupHigh = [16]int8{8, 8, 9, 9, 10, 10, 11, 11, 12, 12, 13, 13, 14, 14, 15, 15}
	// nibbleShift moves the high nibble down in even lanes; Permute reads
	// only the low 4 bits of an index, so odd lanes need no mask.
	nibbleShift = [16]uint32{4, 0, 4, 0, 4, 0, 4, 0, 4, 0, 4, 0, 4, 0, 4, 0}
	// evenLanes and oddLanes pick elements 0, 2, …, 30 and 1, 3, …, 31 of a
	// pair of 16-lane vectors.
	evenLanes = [16]uint32{0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30}
	oddLanes  = [16]uint32{1, 3, 5, 7, 9, 11, 13, 15, 17, 19, 21, 23, 25, 27, 29, 31}
)

// dequantRange decodes the flat elements [e0, e1) into dst[:e1-e0].
func (m *Matrix) dequantRange(dst []float32, e0, e1 int) {
	if haveAVX512 {
		m.dequantRangeAVX512(dst, e0, e1)
		// Dirty upper halves of the vector registers slow the SSE code Go
		// compiles scalar float arithmetic to (measured 3.5× in model/).
		archsimd.ClearAVXUpperBits()
		return
	}
	m.dequantRangeScalar(dst, e0, e1)
}

// quantizeBlocksRange encodes the blocks covering w (which starts at a block
// boundary) into packed and absmax and returns the index in w of the first
// non-finite element, or -1.
func quantizeBlocksRange(packed []byte, absmax []float32, w []float32, blockSize int) int {
	if haveAVX512 {
		bad := quantizeBlocksRangeAVX512(packed, absmax, w, blockSize)
		archsimd.ClearAVXUpperBits()
		return bad
	}
	return quantizeBlocksRangeScalar(packed, absmax, w, blockSize)
}

// mulTRange computes rows [r0, r1) of every row of y = x·Wᵀ.
func (m *Matrix) mulTRange(y, x []float32, n, r0, r1 int) {
	if haveAVX512 {
		m.mulTRangeAVX512(y, x, n, r0, r1)
		archsimd.ClearAVXUpperBits()
		return
	}
	m.mulTRowsScalar(y, x, n, r0, r1)
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

// codesAVX512 is nf4Code on 16 lanes: the same four comparisons against the
// same float32 midpoints, so the codes are identical.
func codesAVX512(v archsimd.Float32x16, mids archsimd.Float32x16, mid7 archsimd.Float32x16,
	one, two, three, four, eight archsimd.Uint32x16) archsimd.Uint32x16 {
	k := eight.Masked(v.Greater(mid7))
	k = k.Add(four.Masked(v.Greater(mids.Permute(k.Add(three)))))
	k = k.Add(two.Masked(v.Greater(mids.Permute(k.Add(one)))))
	return k.Add(one.Masked(v.Greater(mids.Permute(k))))
}

// maxLane returns the largest of the 16 lanes of v.
func maxLane(v archsimd.Uint32x16) uint32 {
	h := v.GetLo().Max(v.GetHi())
	q := h.GetLo().Max(h.GetHi())
	return max(q.GetElem(0), q.GetElem(1), q.GetElem(2), q.GetElem(3))
}

// sumLanes returns the sum of the 16 lanes of v.
func sumLanes(v archsimd.Float32x16) float32 {
	h := v.GetLo().Add(v.GetHi())
	q := h.GetLo().Add(h.GetHi())
	return (q.GetElem(0) + q.GetElem(1)) + (q.GetElem(2) + q.GetElem(3))
}

// quantizeBlocksRangeAVX512 is quantizeBlocksRangeScalar with the full blocks
// done 32 elements per step; the partial last block goes to the scalar code.
func quantizeBlocksRangeAVX512(packed []byte, absmax []float32, w []float32, blockSize int) int {
	absMask := archsimd.BroadcastUint32x16(math.MaxInt32)
	mids := archsimd.LoadFloat32x16(&midpoints)
	mid7 := archsimd.BroadcastFloat32x16(midpoints[7])
	one := archsimd.BroadcastUint32x16(1)
	two := archsimd.BroadcastUint32x16(2)
	three := archsimd.BroadcastUint32x16(3)
	four := archsimd.BroadcastUint32x16(4)
	eight := archsimd.BroadcastUint32x16(8)
	even := archsimd.LoadUint32x16(&evenLanes)
	odd := archsimd.LoadUint32x16(&oddLanes)
	full := len(w) / blockSize
	for b := range full {
		x := w[b*blockSize : (b+1)*blockSize]
		out := packed[b*blockSize/2 : (b+1)*blockSize/2]
		var acc archsimd.Uint32x16
		for v := x; len(v) >= 16; v = v[16:] {
			acc = acc.Max(archsimd.LoadFloat32x16((*[16]float32)(v)).AsUint32x16().And(absMask))
		}
		bitsMax := maxLane(acc)
		if bitsMax >= nonFiniteBits {
			return b*blockSize + firstNonFinite(x)
		}
		a := math.Float32frombits(bitsMax)
		absmax[b] = a
		if a == 0 {
			for i := range out {
				out[i] = zeroCode<<4 | zeroCode
			}
			continue
		}
		scale := archsimd.BroadcastFloat32x16(a)
		for v, o := x, out; len(v) >= 32 && len(o) >= 16; v, o = v[32:], o[16:] {
			in := (*[32]float32)(v)
			c0 := codesAVX512(archsimd.LoadFloat32x16((*[16]float32)(in[:16])).Div(scale), mids, mid7, one, two, three, four, eight)
			c1 := codesAVX512(archsimd.LoadFloat32x16((*[16]float32)(in[16:])).Div(scale), mids, mid7, one, two, three, four, eight)
			hi := c0.ConcatPermute(c1, even)
			lo := c0.ConcatPermute(c1, odd)
			hi.ShiftAllLeft(4).Or(lo).TruncateToUint8().Store((*[16]uint8)(o))
		}
	}
	if rest := w[full*blockSize:]; len(rest) > 0 {
		if i := quantizeBlocksScalar(packed[full*blockSize/2:], absmax[full:full+1], rest, blockSize); i >= 0 {
			return full*blockSize + i
		}
	}
	return -1
}

// scaleChunk is how many block scales the vector MulT decodes ahead into a
// stack buffer, so that a scale decoded from double quantization is reused by
// every group of rows of x.
const scaleChunk = 64

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
		m.mulTSegment(y, x, n, r, rowStart, e0, e1)
		return
	}
	m.mulTSegment(y, x, n, r, rowStart, e0, a0)
	m.mulTSegment(y, x, n, r, rowStart, a1, e1)
	var scales [scaleChunk]float32
	for p0 := a0; p0 < a1; {
		first := p0 >> m.blockShift
		count := min((a1-1)>>m.blockShift-first+1, scaleChunk)
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
