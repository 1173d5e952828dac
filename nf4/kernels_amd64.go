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
// not whole groups go to the scalar code.

// scaleChunk is the number of block scales one kernel call uses.
const scaleChunk = 64

// decodeAVX512 writes the values of groups·32 codes into dst.
//
//go:noescape
func decodeAVX512(dst *float32, codes *byte, scales *float32, groups, firstGroups, blockGroups int)

// decodeAVX2 is decodeAVX512 with AVX2.
//
//go:noescape
func decodeAVX2(dst *float32, codes *byte, scales *float32, groups, firstGroups, blockGroups int)

// dot1AVX512 adds the products of groups·32 weights with x to the lanes acc
// in MulT's order.
//
//go:noescape
func dot1AVX512(acc *[lanes]float32, codes *byte, x *float32, scales *float32, groups, firstGroups, blockGroups int)

// dot4AVX512 is dot1AVX512 for four rows of x, stride bytes apart, sharing
// each decoded weight; acc holds their lanes one after the other.
//
//go:noescape
func dot4AVX512(acc *[4 * lanes]float32, codes *byte, x *float32, stride int, scales *float32, groups, firstGroups, blockGroups int)

// dot1AVX2 is dot1AVX512 with AVX2.
//
//go:noescape
func dot1AVX2(acc *[lanes]float32, codes *byte, x *float32, scales *float32, groups, firstGroups, blockGroups int)

// chunk is one kernel call's share of a 32-aligned run [p0, p1): the scales
// of the blocks it crosses and how many of its groups lie in the first one.
type chunk struct {
	p0, p1      int
	scales      []float32
	firstGroups int
}

// chunks calls fn on consecutive chunks of the 32-aligned run [a0, a1).
// scales is scratch of scaleChunk entries.
func (m *Matrix) chunks(a0, a1 int, scales *[scaleChunk]float32, fn func(c chunk)) {
	for p0 := a0; p0 < a1; {
		first := p0 >> m.blockShift
		count := min((a1-1)>>m.blockShift-first+1, scaleChunk)
		p1 := min(a1, (first+count)<<m.blockShift)
		m.fillScales(scales[:count], first)
		fn(chunk{p0: p0, p1: p1, scales: scales[:count], firstGroups: ((first+1)<<m.blockShift - p0) / lanes})
		p0 = p1
	}
}

// fillScales writes the scales of blocks first, first+1, … into s.
func (m *Matrix) fillScales(s []float32, first int) {
	if m.dq == nil {
		copy(s, m.absmax[first:])
		return
	}
	for k := range s {
		s[k] = m.scale(first + k)
	}
}

// dequantRangeAt decodes the flat elements [e0, e1) into dst[:e1-e0] with
// the kernels of level l.
func (m *Matrix) dequantRangeAt(l cpu.Level, dst []float32, e0, e1 int) {
	a0, a1 := (e0+lanes-1)&^(lanes-1), e1&^(lanes-1)
	if l == cpu.Generic || a1 <= a0 {
		m.dequantRangeScalar(dst[:e1-e0], e0, e1)
		return
	}
	m.dequantRangeScalar(dst[:a0-e0], e0, a0)
	m.dequantRangeScalar(dst[a1-e0:e1-e0], a1, e1)
	decode := decodeAVX2
	if l >= cpu.AVX512 {
		decode = decodeAVX512
	}
	blockGroups := m.blockSize / lanes
	var scales [scaleChunk]float32
	m.chunks(a0, a1, &scales, func(c chunk) {
		out := dst[c.p0-e0 : c.p1-e0]
		codes := m.packed[c.p0/2 : c.p1/2]
		decode(&out[0], &codes[0], &c.scales[0], (c.p1-c.p0)/lanes, c.firstGroups, blockGroups)
	})
}

// mulTRangeAt computes rows [r0, r1) of every row of y = x·Wᵀ with the
// kernels of level l.
func (m *Matrix) mulTRangeAt(l cpu.Level, y, x []float32, n, r0, r1 int) {
	if l == cpu.Generic {
		m.mulTRowsScalar(y, x, n, r0, r1)
		return
	}
	cols := m.cols
	blockGroups := m.blockSize / lanes
	var scales [scaleChunk]float32
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
				m.dotLanesScalar((*[lanes]float32)(acc[q*lanes:]), row[:a0-s], s)
			}
			m.chunks(a0, a1, &scales, func(c chunk) {
				codes := m.packed[c.p0/2 : c.p1/2]
				xs := x[i*cols+c.p0-s : i*cols+c.p1-s]
				groups := (c.p1 - c.p0) / lanes
				switch {
				case k == 4:
					// The last of the four rows must hold the chunk too.
					_ = x[(i+3)*cols+c.p1-s-1]
					dot4AVX512(&acc, &codes[0], &xs[0], 4*cols, &c.scales[0], groups, c.firstGroups, blockGroups)
				case l >= cpu.AVX512:
					dot1AVX512((*[lanes]float32)(acc[:lanes]), &codes[0], &xs[0], &c.scales[0], groups, c.firstGroups, blockGroups)
				default:
					dot1AVX2((*[lanes]float32)(acc[:lanes]), &codes[0], &xs[0], &c.scales[0], groups, c.firstGroups, blockGroups)
				}
			})
			for q := range k {
				row := x[(i+q)*cols : (i+q+1)*cols]
				lane := (*[lanes]float32)(acc[q*lanes:])
				m.dotLanesScalar(lane, row[a1-s:], a1)
				y[(i+q)*m.rows+r] = foldLanes(lane)
			}
			i += k
		}
	}
}
