package nf4

import "github.com/golora/golora/internal/cpu"

// The assembly kernels (kernels_amd64.s) work on whole 32-element groups:
// groups start at flat multiples of 32, so a group lies inside one block
// (block sizes are multiples of 32) and starts at a byte boundary. Each call
// is given the scales of the blocks it crosses, the number of its groups in
// the first of those blocks and the number per block; it decodes or
// multiplies the groups in order, switching scale at each block. A call
// covers at most scaleChunk blocks, so it returns within tens of
// microseconds (assembly is not preemptible). The ends of a range that are
// not whole groups go to the scalar code, and so does the folding of MulT's
// lanes, except in the kernels that cover whole rows of W (when every row
// starts at a multiple of 32), which fold in the same order.

// scaleChunk is the number of block scales one kernel call uses.
const scaleChunk = 64

// matVecScales and matVecScalesWide are the numbers of block scales a call
// of matVec4AVX512 uses at most: the first for matrices of up to 8K
// columns at the default block size, the second for wider ones (up to 64K),
// so that a small product does not clear 16 KiB of stack at every call.
const (
	matVecScales     = 512
	matVecScalesWide = 4096
)

// decodeVBMI is decodeAVX512 with AVX-512 VBMI.
//
//go:noescape
func decodeVBMI(dst *float32, codes *byte, scales *float32, groups, firstGroups, blockGroups int)

// matVec4AVX512 multiplies x (one row of rowGroups·32 floats) by batches·4
// consecutive whole rows of W starting at codes, each from +0 lanes folded
// in MulT's order, writing one float of y per row. Flat group f of W,
// counted from the first one at codes plus firstGroup, has the scale
// scales[f >> groupShift].
//
//go:noescape
func matVec4AVX512(y *float32, codes *byte, x *float32, scales *float32, batches, rowGroups, firstGroup, groupShift int)

// decodeAVX512 writes the values of groups·32 codes into dst.
//
//go:noescape
func decodeAVX512(dst *float32, codes *byte, scales *float32, groups, firstGroups, blockGroups int)

// decodeAVX2 is decodeAVX512 with AVX2.
//
//go:noescape
func decodeAVX2(dst *float32, codes *byte, scales *float32, groups, firstGroups, blockGroups int)

// dot1AVX512 adds the products of groups·32 weights with x to the lanes acc
// in MulT's order, acc holding each lane at the position of its element
// (lanesToElements).
//
//go:noescape
func dot1AVX512(acc *[lanes]float32, codes *byte, x *float32, scales *float32, groups, firstGroups, blockGroups int)

// dot4AVX512 is dot1AVX512 for four rows of x, stride bytes apart, sharing
// each decoded weight; acc holds their lanes one after the other.
//
//go:noescape
func dot4AVX512(acc *[4 * lanes]float32, codes *byte, x *float32, stride int, scales *float32, groups, firstGroups, blockGroups int)

// dotRowsAVX512 multiplies x (one row of rowGroups·32 floats) by the
// groups/rowGroups consecutive whole rows of W starting at codes, each from
// +0 lanes folded in MulT's order, writing one float of y per row.
//
//go:noescape
func dotRowsAVX512(y *float32, codes *byte, x *float32, scales *float32, groups, firstGroups, blockGroups, rowGroups int)

// dotRows4AVX512 is dotRowsAVX512 for four rows of x, xstride bytes apart,
// writing four rows of y, ystride bytes apart.
//
//go:noescape
func dotRows4AVX512(y *float32, codes *byte, x *float32, xstride, ystride int, scales *float32, groups, firstGroups, blockGroups, rowGroups int)

// dotRowsAVX2 is dotRowsAVX512 with AVX2.
//
//go:noescape
func dotRowsAVX2(y *float32, codes *byte, x *float32, scales *float32, groups, firstGroups, blockGroups, rowGroups int)

// dot1AVX2 is dot1AVX512 with AVX2.
//
//go:noescape
func dot1AVX2(acc *[lanes]float32, codes *byte, x *float32, scales *float32, groups, firstGroups, blockGroups int)

// scalesAVX512 writes out[k] = table[codes[k]]·nested + offset (rounded
// after the product, as the Go code) for k < n, n a positive multiple of
// 16.
//
//go:noescape
func scalesAVX512(out *float32, codes *uint8, n int, table *[256]float32, nested, offset float32)

// scalesVBMI is scalesAVX512 for n a multiple of 64, with AVX-512 VBMI,
// from the table's byte planes (doubleQuant.planes).
//
//go:noescape
func scalesVBMI(out *float32, codes *uint8, n int, planes *[4][256]byte, nested, offset float32)

// chunks walks a 32-aligned run of flat elements in kernel calls: each
// covers at most scaleChunk blocks. (An iterator, not a callback: a scale
// buffer handed to a function value would escape to the heap.)
type chunks struct {
	l      cpu.Level
	m      *Matrix
	p, end int
	scales [scaleChunk]float32
}

// next returns the next call's run [p0, p1), the number of its groups in its
// first block and the scales of its blocks, or ok = false at the end.
func (c *chunks) next() (p0, p1, firstGroups int, scales []float32, ok bool) {
	if c.p >= c.end {
		return 0, 0, 0, nil, false
	}
	m := c.m
	p0 = c.p
	first := p0 >> m.blockShift
	count := min((c.end-1)>>m.blockShift-first+1, scaleChunk)
	p1 = min(c.end, (first+count)<<m.blockShift)
	m.fillScales(c.l, c.scales[:count], first)
	c.p = p1
	return p0, p1, ((first+1)<<m.blockShift - p0) / lanes, c.scales[:count], true
}

// fillScales writes the scales of blocks first, first+1, … into s: m.scale
// for each, with the double-quantization lookups hoisted out of the loop,
// and made 16 at a time (a gather from the code table) with AVX-512, 64 at
// a time with VBMI.
func (m *Matrix) fillScales(l cpu.Level, s []float32, first int) {
	dq := m.dq
	if dq == nil {
		copy(s, m.absmax[first:])
		return
	}
	code := (*[256]float32)(dq.code)
	codes := dq.codes[first : first+len(s)]
	for len(codes) > 0 {
		nb := first >> dq.shift
		run := min(len(codes), (nb+1)<<dq.shift-first)
		nested, offset, out := dq.nested[nb], dq.offset, s[:run]
		k := 0
		if l >= cpu.AVX512 && run >= 64 && cpu.HasAVX512VBMI() {
			k = run &^ 63
			scalesVBMI(&out[0], &codes[0], k, &dq.planes, nested, offset)
		}
		if l >= cpu.AVX512 && run-k >= 16 {
			n := (run - k) &^ 15
			scalesAVX512(&out[k], &codes[k], n, code, nested, offset)
			k += n
		}
		for ; k < run; k++ {
			out[k] = float32(code[codes[k]]*nested) + offset
		}
		s, codes, first = s[run:], codes[run:], first+run
	}
}

// dequantRangeAt decodes the flat elements [e0, e1) into dst[:e1-e0] with
// the kernels of level l.
func (m *Matrix) dequantRangeAt(l cpu.Level, dst []float32, e0, e1 int) {
	m.dequantRangeWith(l, l >= cpu.AVX512 && cpu.HasAVX512VBMI(), dst, e0, e1)
}

// dequantRangeWith is dequantRangeAt with the VBMI kernels or without.
func (m *Matrix) dequantRangeWith(l cpu.Level, vbmi bool, dst []float32, e0, e1 int) {
	a0, a1 := (e0+lanes-1)&^(lanes-1), e1&^(lanes-1)
	if l == cpu.Generic || a1 <= a0 {
		m.dequantRangeScalar(dst[:e1-e0], e0, e1)
		return
	}
	m.dequantRangeScalar(dst[:a0-e0], e0, a0)
	m.dequantRangeScalar(dst[a1-e0:e1-e0], a1, e1)
	blockGroups := m.blockSize / lanes
	it := chunks{l: l, m: m, p: a0, end: a1}
	for p0, p1, firstGroups, scales, ok := it.next(); ok; p0, p1, firstGroups, scales, ok = it.next() {
		out := dst[p0-e0 : p1-e0]
		codes := m.packed[p0/2 : p1/2]
		// Direct calls: through a function value the scales would escape.
		switch {
		case vbmi:
			decodeVBMI(&out[0], &codes[0], &scales[0], (p1-p0)/lanes, firstGroups, blockGroups)
		case l >= cpu.AVX512:
			decodeAVX512(&out[0], &codes[0], &scales[0], (p1-p0)/lanes, firstGroups, blockGroups)
		default:
			decodeAVX2(&out[0], &codes[0], &scales[0], (p1-p0)/lanes, firstGroups, blockGroups)
		}
	}
}

// mulTRangeAt computes rows [r0, r1) of every row of y = x·Wᵀ with the
// kernels of level l.
func (m *Matrix) mulTRangeAt(l cpu.Level, y, x []float32, n, r0, r1 int) {
	m.mulTRangeWith(l, l >= cpu.AVX512, y, x, n, r0, r1)
}

// mulTRangeWith is mulTRangeAt with the four-row mat-vec kernel or
// without: with it, the rows of x not taken four at a time go through
// matVecAVX512.
func (m *Matrix) mulTRangeWith(l cpu.Level, matVec bool, y, x []float32, n, r0, r1 int) {
	if matVec && m.cols%lanes == 0 && r1-r0 >= 4 && m.matVecFits(matVecScalesWide) {
		n4 := n &^ 3
		if n4 > 0 {
			m.mulTRangeWith(l, false, y[:n4*m.rows], x[:n4*m.cols], n4, r0, r1)
		}
		for i := n4; i < n; i++ {
			m.matVecAVX512(y[i*m.rows:(i+1)*m.rows], x[i*m.cols:(i+1)*m.cols], r0, r1)
		}
		return
	}
	if l == cpu.Generic {
		m.mulTRowsScalar(y, x, n, r0, r1)
		return
	}
	if m.cols%lanes == 0 && (scaleChunk-1)*m.blockSize >= m.cols {
		m.mulTWholeRows(l, y, x, n, r0, r1)
		return
	}
	m.mulTRowsVec(l, y, x, n, r0, r1)
}

// mulTRowsVec computes rows [r0, r1) of every row of y = x·Wᵀ one row of W
// at a time: the whole groups of the row with the kernels of level l (four
// rows of x at a time with AVX-512), its ends and the folding in Go.
func (m *Matrix) mulTRowsVec(l cpu.Level, y, x []float32, n, r0, r1 int) {
	cols := m.cols
	blockGroups := m.blockSize / lanes
	var acc [4 * lanes]float32
	for r := r0; r < r1; r++ {
		s, e1 := r*cols, (r+1)*cols
		a0, a1 := (s+lanes-1)&^(lanes-1), e1&^(lanes-1)
		if a1 <= a0 {
			for i := range n {
				lane := (*[lanes]float32)(acc[:lanes])
				clear(lane[:])
				m.dotLanesScalar(lane, x[i*cols:(i+1)*cols], s)
				y[i*m.rows+r] = foldLanes(lane)
			}
			continue
		}
		step := 1
		if l >= cpu.AVX512 && n >= 4 {
			step = 4
		}
		for i := 0; i < n; {
			k := min(step, n-i)
			if k < step {
				k = 1
			}
			clear(acc[:k*lanes])
			for q := range k {
				row := x[(i+q)*cols : (i+q+1)*cols]
				lane := (*[lanes]float32)(acc[q*lanes:])
				m.dotLanesScalar(lane, row[:a0-s], s)
				// The kernels below add in element order.
				lanesToElements(lane)
			}
			it := chunks{l: l, m: m, p: a0, end: a1}
			for p0, p1, firstGroups, scales, ok := it.next(); ok; p0, p1, firstGroups, scales, ok = it.next() {
				codes := m.packed[p0/2 : p1/2]
				xs := x[i*cols+p0-s : i*cols+p1-s]
				groups := (p1 - p0) / lanes
				switch {
				case k == 4:
					// The last of the four rows must hold the run too.
					_ = x[(i+3)*cols+p1-s-1]
					dot4AVX512(&acc, &codes[0], &xs[0], 4*cols, &scales[0], groups, firstGroups, blockGroups)
				case l >= cpu.AVX512:
					dot1AVX512((*[lanes]float32)(acc[:lanes]), &codes[0], &xs[0], &scales[0], groups, firstGroups, blockGroups)
				default:
					dot1AVX2((*[lanes]float32)(acc[:lanes]), &codes[0], &xs[0], &scales[0], groups, firstGroups, blockGroups)
				}
			}
			for q := range k {
				row := x[(i+q)*cols : (i+q+1)*cols]
				lane := (*[lanes]float32)(acc[q*lanes:])
				elementsToLanes(lane)
				m.dotLanesScalar(lane, row[a1-s:], a1)
				y[(i+q)*m.rows+r] = foldLanes(lane)
			}
			i += k
		}
	}
}

// mulTWholeRows computes rows [r0, r1) of every row of y = x·Wᵀ when every
// row of W starts at a flat multiple of 32 (cols is one) and spans fewer
// than scaleChunk blocks: each kernel call covers as many whole rows of W as
// fit in scaleChunk blocks, for four rows of x at a time with AVX-512, else
// one.
func (m *Matrix) mulTWholeRows(l cpu.Level, y, x []float32, n, r0, r1 int) {
	cols, rows := m.cols, m.rows
	per := (scaleChunk - 1) * m.blockSize / cols
	var scales [scaleChunk]float32
	for i := 0; i < n; {
		k := 1
		if l >= cpu.AVX512 && n-i >= 4 {
			k = 4
		}
		// The kernel reads rows i … i+k−1 of x and writes those of y.
		xs := x[i*cols : (i+k)*cols]
		ys := y[i*rows : (i+k)*rows]
		for r := r0; r < r1; r += per {
			re := min(r1, r+per)
			p0, p1 := r*cols, re*cols
			first := p0 >> m.blockShift
			count := (p1-1)>>m.blockShift - first + 1
			m.fillScales(l, scales[:count], first)
			groups, firstGroups := (p1-p0)/lanes, ((first+1)<<m.blockShift-p0)/lanes
			switch {
			case k == 4:
				dotRows4AVX512(&ys[r], &m.packed[p0/2], &xs[0], 4*cols, 4*rows, &scales[0], groups, firstGroups, m.blockSize/lanes, cols/lanes)
			case l >= cpu.AVX512:
				dotRowsAVX512(&ys[r], &m.packed[p0/2], &xs[0], &scales[0], groups, firstGroups, m.blockSize/lanes, cols/lanes)
			default:
				dotRowsAVX2(&ys[r], &m.packed[p0/2], &xs[0], &scales[0], groups, firstGroups, m.blockSize/lanes, cols/lanes)
			}
		}
		i += k
	}
}

// matVecAVX512 computes y[r] = x·W[r] for the rows r in [r0, r1), at least
// four, of a matrix whose rows start at flat multiples of 32, four rows at a
// time; a last batch of fewer rows is done again as the last four.
func (m *Matrix) matVecAVX512(y, x []float32, r0, r1 int) {
	if m.matVecFits(matVecScales) {
		var scales [matVecScales]float32
		m.matVecRowsAVX512(y, x, r0, r1, scales[:])
		return
	}
	var scales [matVecScalesWide]float32
	m.matVecRowsAVX512(y, x, r0, r1, scales[:])
}

// matVecFits reports whether a buffer of n scales holds the blocks of four
// rows: k rows touch at most k·cols/blockSize + 2 blocks, a bound that
// must not be rounded down.
func (m *Matrix) matVecFits(n int) bool {
	return 4*m.cols <= (n-2)*m.blockSize
}

// matVecRowsAVX512 is matVecAVX512 with a buffer for the scales of at least
// four rows (matVecFits).
func (m *Matrix) matVecRowsAVX512(y, x []float32, r0, r1 int, scales []float32) {
	cols := m.cols
	// Rows per call: a multiple of four whose blocks fit in scales (k rows
	// touch at most k·cols/blockSize + 2 blocks).
	per := ((len(scales) - 2) * m.blockSize / cols) &^ 3
	groupShift := int(m.blockShift) - 5
	for r := r0; r < r1; {
		re := min(r1, r+per)
		k := (re - r) &^ 3
		if k == 0 {
			r, k = re-4, 4
		}
		p0, p1 := r*cols, (r+k)*cols
		first := p0 >> m.blockShift
		count := (p1-1)>>m.blockShift - first + 1
		s := scales[:count]
		if m.dq == nil {
			s = m.absmax[first : first+count]
		} else {
			m.fillScales(cpu.AVX512, s, first)
		}
		matVec4AVX512(&y[r], &m.packed[p0/2], &x[0], &s[0], k/4, cols/lanes, p0/lanes-first<<groupShift, groupShift)
		r += k
	}
}
