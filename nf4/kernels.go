package nf4

import (
	"math"
	"sync"

	"github.com/golora/golora/internal/kernels"
	"github.com/golora/golora/internal/parallel"
)

// Work below these sizes runs on the calling goroutine: starting goroutines
// costs a few microseconds, and DequantizeRows and MulT on small inputs must
// not allocate.
const (
	parallelMinElems = 1 << 20 // elements decoded or encoded
	parallelMinMACs  = 1 << 22 // multiply-adds of MulT
	// parallelMinBlocks is the number of absmax values worth double
	// quantizing on several goroutines (a nearest-value search each).
	parallelMinBlocks = 1 << 15
	// quantizePiece is the number of weights a goroutine of quantizeBlocks
	// encodes at a time: a multiple of every block size.
	quantizePiece = 1 << 18
)

// nonFiniteBits is the smallest |x| bit pattern of ±Inf; every NaN is above.
// For non-negative floats the bit patterns order like the values, so the
// maximum of the |x| bits is both the absmax and a finiteness check.
const nonFiniteBits = 0x7f800000

// nf4Code returns the code of a normalized weight: the number of midpoints
// strictly below v. Values outside [−1, 1] get code 0 or 15, the codes of −1
// and 1, which is the clamping bitsandbytes applies. The top 12 bits of v's
// order key select a bucket holding at most one midpoint, so one table
// lookup and one comparison (done with a mask, not a branch: its outcome is
// random for real weights) give the code.
func nf4Code(v float32) byte {
	kv := orderKey(v)
	lo := codeBuckets[uint32(kv>>bucketShift+int32(len(codeBuckets)/2))%uint32(len(codeBuckets))]
	above := (midpointKeys[lo&15] - int64(kv)) >> 63 // all ones if v > midpoint lo
	return lo + byte(above&1)
}

// bucketShift makes the buckets of nf4Code 2^20 order keys wide: an eighth of
// a binary octave, narrower than the gap between any two midpoints.
const bucketShift = 20

// codeBuckets[i] is the code of the smallest value whose order key, shifted
// right by bucketShift, is i − 2048.
var codeBuckets = func() (table [1 << (32 - bucketShift)]byte) {
	for i := range table {
		low := int64(i-len(table)/2) << bucketShift
		for _, mk := range midpointKeys[:15] {
			if low > mk {
				table[i]++
			}
		}
	}
	return table
}()

// midpointKeys are the order keys of the midpoints, with a sentinel above
// every key at index 15.
var midpointKeys = func() (keys [16]int64) {
	for i, m := range midpoints[:15] {
		keys[i] = int64(orderKey(m))
	}
	keys[15] = math.MaxInt64
	return keys
}()

// orderKey maps a float32 that is not NaN to an int32 that orders like it
// (−0 just below +0; no midpoint is zero).
func orderKey(f float32) int32 {
	b := int32(math.Float32bits(f))
	return b ^ (b >> 31 & math.MaxInt32)
}

// absmaxBits returns max over x of the bits of |x|.
func absmaxBits(x []float32) uint32 {
	var m uint32
	for _, v := range x {
		m = max(m, math.Float32bits(v)&^(1<<31))
	}
	return m
}

// encodeBlockScalar writes the codes of one block x (starting at an even
// element, so at a byte boundary) into packed, given its absmax bits.
func encodeBlockScalar(packed []byte, x []float32, absmax float32) {
	if absmax == 0 {
		for i := range len(x) / 2 {
			packed[i] = zeroCode<<4 | zeroCode
		}
		if len(x)%2 == 1 {
			packed[len(x)/2] = zeroCode << 4
		}
		return
	}
	i := 0
	for ; i+1 < len(x); i += 2 {
		packed[i/2] = nf4Code(x[i]/absmax)<<4 | nf4Code(x[i+1]/absmax)
	}
	if i < len(x) {
		packed[i/2] = nf4Code(x[i]/absmax) << 4
	}
}

// quantizeBlocksScalar encodes the blocks of w (w starts at a block
// boundary) into packed and absmax. It returns the index in w of the first
// non-finite element, or -1.
func quantizeBlocksScalar(packed []byte, absmax []float32, w []float32, blockSize int) int {
	for b := range absmax {
		lo := b * blockSize
		hi := min(lo+blockSize, len(w))
		m := absmaxBits(w[lo:hi])
		if m >= nonFiniteBits {
			return lo + kernels.FirstNonFinite(w[lo:hi])
		}
		absmax[b] = math.Float32frombits(m)
		encodeBlockScalar(packed[lo/2:], w[lo:hi], absmax[b])
	}
	return -1
}

// quantizeBlocks encodes w into packed and absmax, on several goroutines for
// large inputs. It returns the index of the first non-finite element, or -1.
func quantizeBlocks(packed []byte, absmax []float32, w []float32, blockSize int) int {
	var mu sync.Mutex
	bad := -1
	// Pieces, not halves: a CPU taken by another process then holds up one
	// piece, not half the matrix.
	piece := max(quantizePiece, blockSize)
	if len(w) < parallelMinElems {
		piece = len(w)
	}
	parallel.Pieces(len(w), piece, func(lo, hi int) {
		i := quantizeBlocksRange(packed[lo/2:], absmax[lo/blockSize:], w[lo:hi], blockSize)
		if i < 0 {
			return
		}
		mu.Lock()
		if bad < 0 || lo+i < bad {
			bad = lo + i
		}
		mu.Unlock()
	})
	return bad
}

// quantizeBlocksRangeScalar is quantizeBlocksScalar on the blocks covering w.
func quantizeBlocksRangeScalar(packed []byte, absmax []float32, w []float32, blockSize int) int {
	nb := (len(w) + blockSize - 1) / blockSize
	return quantizeBlocksScalar(packed, absmax[:nb], w, blockSize)
}

// dequantRangeScalar decodes the flat elements [e0, e1) into dst[:e1-e0].
func (m *Matrix) dequantRangeScalar(dst []float32, e0, e1 int) {
	for e0 < e1 {
		b := e0 >> m.blockShift
		hi := min(e1, (b+1)<<m.blockShift)
		table := scaledCodebook(m.scale(b))
		decodeRunScalar(dst[:hi-e0], m.packed, e0, &table)
		dst = dst[hi-e0:]
		e0 = hi
	}
}

// scaledCodebook returns the codebook times a block's absmax: the values of
// the block's 16 codes.
func scaledCodebook(scale float32) [16]float32 {
	var table [16]float32
	for i, c := range codebook {
		table[i] = c * scale
	}
	return table
}

// decodeRunScalar writes elements [e0, e0+len(dst)) of the matrix, all in
// one block whose code values are table, into dst.
func decodeRunScalar(dst []float32, packed []byte, e0 int, table *[16]float32) {
	if len(dst) == 0 {
		return
	}
	i := 0
	if e0%2 == 1 {
		dst[0] = table[packed[e0/2]&15]
		i = 1
	}
	src := packed[(e0+i)/2:]
	// Eight bytes per step through array pointers: one bounds check per 16
	// elements instead of three per element.
	for ; i+16 <= len(dst) && len(src) >= 8; i += 16 {
		in, out := (*[8]byte)(src), (*[16]float32)(dst[i:])
		for j, b := range in {
			out[2*j] = table[b>>4]
			out[2*j+1] = table[b&15]
		}
		src = src[8:]
	}
	for ; i+1 < len(dst); i += 2 {
		b := src[0]
		src = src[1:]
		dst[i] = table[b>>4]
		dst[i+1] = table[b&15]
	}
	if i < len(dst) {
		dst[i] = table[src[0]>>4]
	}
}

// MulT's summation order. Every output y[i, r] is the dot product of row i
// of x with row r of W, summed in one fixed order that the scalar code and
// every vector kernel follow, so that all of them give the same bits:
//
//   - the flat matrix is cut into groups of 32 elements starting at flat
//     multiples of 32 (so they never straddle a block or a byte), and each
//     group's elements go to 32 lanes: lane 16h+l (h < 2, l < 16) takes the
//     element whose code is nibble l/2, counted from the least significant,
//     of the little-endian dword l mod 2 of the group's 8 bytes 8h..8h+7
//     (laneElements). This order lets a vector kernel bring every lane's
//     code into place with a broadcast and one shift, where element order
//     takes a shuffle;
//   - each lane starts at +0 and adds w·x for its elements in increasing
//     column order, each with one rounding: a fused multiply-add (fma32),
//     which costs a vector kernel one instruction where a product and a sum
//     cost two, and is never less accurate than rounding both;
//   - the 32 lanes are then folded in halves: lane j += lane j+16 for
//     j < 16, then j += j+8, j += j+4, j += j+2, j += j+1; lane 0 is the
//     result.
//
// Lane 16h+l holds element 16h+laneElements[l], so a kernel that decodes
// in element order may hold the lanes at the positions of their elements:
// there lane j+16 sits 16 after lane j, j+8 4 after j, j+4 2 after, j+2 1
// before and j+1 8 after, and the fold adds the same pairs.
//
// A 16-lane AVX-512 register holds lanes 0..15 or 16..31, an 8-lane AVX2
// register a quarter: the vector kernels add one group per step, and the
// code below (or a kernel doing the same additions) the partial groups at
// the ends of a row and the folding.
const lanes = 32

// laneElements[L] is the element of a group that lane L adds, and
// elementLanes its inverse.
var laneElements, elementLanes = func() (le, el [lanes]int) {
	for L := range le {
		h, l := L/16, L%16
		b := 8*h + 4*(l%2) + l/4 // the code's byte in the group
		e := 2*b + 1             // a low nibble: the odd element of the byte
		if (l/2)%2 == 1 {
			e = 2 * b // a high nibble
		}
		le[L], el[e] = e, L
	}
	return le, el
}()

// dotLanesScalar adds to the lanes the products of x with the weights at
// flat elements [e0, e0+len(x)), in MulT's order. It decodes the weights a
// chunk at a time, then adds them lane by lane.
func (m *Matrix) dotLanesScalar(acc *[lanes]float32, x []float32, e0 int) {
	if len(x) == 0 {
		return // before clearing w: the vector kernels call this for empty ends
	}
	var w [16 * lanes]float32
	e1 := e0 + len(x)
	for e0 < e1 {
		// Chunks after the first start at a group boundary.
		hi := min(e1, e0&^(lanes-1)+len(w))
		m.dequantRangeScalar(w[:hi-e0], e0, hi)
		dotLanes(acc, w[:hi-e0], x[:hi-e0], e0%lanes)
		x = x[hi-e0:]
		e0 = hi
	}
}

// dotLanes adds to the lanes the products w[i]·x[i], element i being element
// (first+i) mod 32 of its group, each with one rounding (fma32).
func dotLanes(acc *[lanes]float32, w, x []float32, first int) {
	x = x[:len(w)]
	i := 0
	for ; first%lanes != 0 && i < len(w); i, first = i+1, first+1 {
		l := elementLanes[first%lanes]
		acc[l] = fma32(w[i], x[i], acc[l])
	}
	groups := (len(w) - i) / lanes
	// A quarter of the lanes at a time, so that their sums stay in
	// registers. Quarter q's lanes take the elements quarterBase[q] + 1, 9,
	// 0, 8, 3, 11, 2, 10 (laneElements): constant indices, so no bounds
	// checks in the loop.
	for q, base := range [4]int{0, 4, 16, 20} {
		a := (*[8]float32)(acc[8*q:])
		a0, a1, a2, a3, a4, a5, a6, a7 := a[0], a[1], a[2], a[3], a[4], a[5], a[6], a[7]
		for g := range groups {
			u := (*[12]float32)(w[i+g*lanes+base:])
			v := (*[12]float32)(x[i+g*lanes+base:])
			// fma32's common case written out for the eight lanes, its
			// rare one (fma32Rare) taken for all eight when any needs it:
			// fma32 itself is too large for the compiler to inline.
			s0 := float64(u[1])*float64(v[1]) + float64(a0)
			s1 := float64(u[9])*float64(v[9]) + float64(a1)
			s2 := float64(u[0])*float64(v[0]) + float64(a2)
			s3 := float64(u[8])*float64(v[8]) + float64(a3)
			s4 := float64(u[3])*float64(v[3]) + float64(a4)
			s5 := float64(u[11])*float64(v[11]) + float64(a5)
			s6 := float64(u[2])*float64(v[2]) + float64(a6)
			s7 := float64(u[10])*float64(v[10]) + float64(a7)
			if maybeHalfway32(s0) || maybeHalfway32(s1) || maybeHalfway32(s2) || maybeHalfway32(s3) ||
				maybeHalfway32(s4) || maybeHalfway32(s5) || maybeHalfway32(s6) || maybeHalfway32(s7) {
				a0 = fma32(u[1], v[1], a0)
				a1 = fma32(u[9], v[9], a1)
				a2 = fma32(u[0], v[0], a2)
				a3 = fma32(u[8], v[8], a3)
				a4 = fma32(u[3], v[3], a4)
				a5 = fma32(u[11], v[11], a5)
				a6 = fma32(u[2], v[2], a6)
				a7 = fma32(u[10], v[10], a7)
				continue
			}
			a0, a1, a2, a3 = float32(s0), float32(s1), float32(s2), float32(s3)
			a4, a5, a6, a7 = float32(s4), float32(s5), float32(s6), float32(s7)
		}
		a[0], a[1], a[2], a[3], a[4], a[5], a[6], a[7] = a0, a1, a2, a3, a4, a5, a6, a7
	}
	for j := range len(w) - i - groups*lanes {
		l := elementLanes[j]
		acc[l] = fma32(w[i+groups*lanes+j], x[i+groups*lanes+j], acc[l])
	}
}

// lanesToElements moves each lane of acc to the position of its element
// (the layout of the kernels that decode in element order), and
// elementsToLanes back.
func lanesToElements(acc *[lanes]float32) {
	t := *acc
	for l, e := range laneElements {
		acc[e] = t[l]
	}
}

func elementsToLanes(acc *[lanes]float32) {
	t := *acc
	for l, e := range laneElements {
		acc[l] = t[e]
	}
}

// fma32 returns a·b + c rounded once to float32, as VFMADD231PS computes it.
// The product of two float32 values is exact in float64, so s below is the
// exact sum rounded once to float64; rounding s to float32 is then the single
// rounding of the exact sum except when s lies exactly halfway between two
// float32 values and the exact sum does not: there the exact error of s
// (Knuth's TwoSum) says which way the one rounding goes.
func fma32(a, b, c float32) float32 {
	p := float64(a) * float64(b)
	s := p + float64(c)
	if !halfway32(s) {
		return float32(s)
	}
	z := s - p
	e := (p - (s - z)) + (float64(c) - z)
	switch {
	case e > 0:
		s = math.Nextafter(s, math.Inf(1))
	case e < 0:
		s = math.Nextafter(s, math.Inf(-1))
	}
	return float32(s)
}

// maybeHalfway32 reports whether s may lie halfway between two float32
// values (halfway32): the test for float32 normals, and every value below
// them (the few where it costs halfway32's longer test).
func maybeHalfway32(s float64) bool {
	bits := math.Float64bits(s)
	return bits&(1<<29-1) == 1<<28 || bits&(0x7ff<<52) < (1023-126)<<52
}

// halfway32 reports whether the float64 s lies exactly halfway between two
// adjacent float32 values (counting 2¹²⁸ as the one above the largest).
func halfway32(s float64) bool {
	bits := math.Float64bits(s)
	exp := int(bits>>52) & 0x7ff
	switch {
	case exp == 0x7ff:
		return false // ±Inf, NaN
	case exp >= 1023-126:
		// A float32 normal: 24 significant bits, so a float64 halfway
		// between two of them has the 29 low bits 1000…0.
		return bits&(1<<29-1) == 1<<28
	default:
		// Below the float32 normals the spacing is 2⁻¹⁴⁹: halfway is an
		// odd multiple of 2⁻¹⁵⁰ (exact scaling by a power of two).
		t := math.Abs(s) * 0x1p150
		return t == math.Trunc(t) && math.Mod(t, 2) == 1
	}
}

// foldLanes returns the sum of the lanes in MulT's order, written out: it
// runs once per output.
func foldLanes(a *[lanes]float32) float32 {
	h0, h1, h2, h3 := a[0]+a[16], a[1]+a[17], a[2]+a[18], a[3]+a[19]
	h4, h5, h6, h7 := a[4]+a[20], a[5]+a[21], a[6]+a[22], a[7]+a[23]
	h8, h9, h10, h11 := a[8]+a[24], a[9]+a[25], a[10]+a[26], a[11]+a[27]
	h12, h13, h14, h15 := a[12]+a[28], a[13]+a[29], a[14]+a[30], a[15]+a[31]
	q0, q1, q2, q3 := h0+h8, h1+h9, h2+h10, h3+h11
	q4, q5, q6, q7 := h4+h12, h5+h13, h6+h14, h7+h15
	o0, o1, o2, o3 := q0+q4, q1+q5, q2+q6, q3+q7
	return (o0 + o2) + (o1 + o3)
}

// mulTRowsScalar computes rows [r0, r1) of every row of y = x·Wᵀ.
func (m *Matrix) mulTRowsScalar(y, x []float32, n, r0, r1 int) {
	for r := r0; r < r1; r++ {
		for i := range n {
			var acc [lanes]float32
			m.dotLanesScalar(&acc, x[i*m.cols:(i+1)*m.cols], r*m.cols)
			y[i*m.rows+r] = foldLanes(&acc)
		}
	}
}

// parallelFor calls fn on consecutive chunks of [0, n) whose boundaries are
// multiples of align: one call on the calling goroutine when n < minWork,
// otherwise one chunk per CPU.
func parallelFor(n, minWork, align int, fn func(lo, hi int)) {
	if n < minWork {
		fn(0, n)
		return
	}
	parallel.For(n, 1, align, fn)
}
