package nf4

import (
	"math"
	"sort"
)

// quantizeChunk is the number of weights one call of an assembly
// quantization kernel encodes at most, so that it returns within tens of
// microseconds (assembly is not preemptible).
const quantizeChunk = 1 << 14

// The nested (double) quantization of the absmax values is
// quant.QuantizeBlockwise with the signed dynamic map, whose nearest-code
// search is a binary search over 256 values. Here the order key's top bits
// pick a bucket that says where the search can start, and a scan of the few
// codes left in the bucket finds the same index: the same result, several
// times faster (TestNestedMatchesQuantizeBlockwise).

// nearestTable finds, for a sorted codebook of at most 256 values, the
// lowest index of the value nearest a float32, ties to the lower index, as
// quant.QuantizeBlockwise does.
type nearestTable struct {
	code []float32
	keys []int32
	// start[i] is the number of codes whose order key is below the smallest
	// key of bucket i (keys with the same top bits as i − 32768).
	start [1 << (32 - nestedBucketShift)]uint16
	// split[i] answers for every value in bucket i that has at most one
	// boundary between two codes: the low byte is the code of the bucket's
	// lowest values, the next byte the code from the boundary on, the high
	// 16 bits the boundary's offset in the bucket. The search is monotone in
	// the value, so a bucket is one run of one code or two runs of two.
	// Buckets with more boundaries (near zero, where the dynamic map's codes
	// crowd) or with non-finite values hold badSplit and are searched. The
	// double quantization of a 1B-shaped model (19 million absmax values)
	// spent 11% of its load's CPU time in the search.
	split [1 << (32 - nestedBucketShift)]uint32
}

// badSplit marks a bucket of nearestTable.split whose values are searched:
// its low code is above its high code, which a searched bucket never has.
const badSplit = 1

// nestedBucketShift makes the buckets of nearestTable 2^16 order keys wide,
// 1/128 of a binary octave: narrower than the gaps of the signed dynamic
// map except around zero, so the scan from a bucket's start rarely takes a
// step. With NF4's wider buckets (bucketShift) it took several
// unpredictable steps, and the double quantization cost a 8B-shaped load
// 15% of its CPU time, as much as the 4-bit codes themselves.
const nestedBucketShift = 16

// newNearestTable builds the table of a sorted codebook of 1 to 256 finite
// values.
func newNearestTable(code []float32) *nearestTable {
	t := &nearestTable{code: code, keys: make([]int32, len(code))}
	for i, c := range code {
		t.keys[i] = orderKey(c)
	}
	j := 0
	for i := range t.start {
		low := int64(i-len(t.start)/2) << nestedBucketShift
		for j < len(t.keys) && int64(t.keys[j]) < low {
			j++
		}
		t.start[i] = uint16(j)
	}
	const width = 1 << nestedBucketShift
	for i := range t.split {
		low := int32(i-len(t.split)/2) << nestedBucketShift
		t.split[i] = badSplit
		lo, hi := keyFloat(low), keyFloat(low|(width-1))
		if !finite(lo) || !finite(hi) {
			continue
		}
		cLo, cHi := t.search(lo), t.search(hi)
		if cLo == cHi {
			t.split[i] = uint32(cLo) | uint32(cLo)<<8
			continue
		}
		at := sort.Search(width, func(o int) bool { return t.search(keyFloat(low|int32(o))) != cLo })
		if t.search(keyFloat(low|int32(at))) == cHi {
			t.split[i] = uint32(cLo) | uint32(cHi)<<8 | uint32(at)<<16
		}
	}
	return t
}

// keyFloat is the inverse of orderKey.
func keyFloat(k int32) float32 { return math.Float32frombits(uint32(k ^ (k >> 31 & math.MaxInt32))) }

// nearest returns the code of v.
func (t *nearestTable) nearest(v float32) uint8 {
	k := orderKey(v)
	e := t.split[uint32(k>>nestedBucketShift+int32(len(t.split)/2))%uint32(len(t.split))]
	if e == badSplit {
		return t.search(v)
	}
	// below is 1 when v lies before the bucket's boundary, without a branch
	// that values on both sides of it would mispredict.
	below := (uint32(k)&(1<<nestedBucketShift-1) - e>>16) >> 31
	return uint8(e >> (8 - 8*below))
}

// search returns the code of v from its bucket's start, without split.
func (t *nearestTable) search(v float32) uint8 {
	kv := orderKey(v)
	right := int(t.start[uint32(kv>>nestedBucketShift+int32(len(t.start)/2))%uint32(len(t.start))])
	for right < len(t.keys) && t.keys[right] < kv {
		right++
	}
	left := max(right-1, 0)
	right = min(right, len(t.code)-1)
	// Distances are ≥ 0, so their bit patterns order like their values; a
	// tie keeps the left (lower) index.
	distLeft := int64(math.Float32bits(abs32(v - t.code[left])))
	distRight := int64(math.Float32bits(abs32(v - t.code[right])))
	k := left + (right-left)&int((distRight-distLeft)>>63)
	for k > 0 && t.code[k-1] == t.code[k] {
		k--
	}
	return uint8(k)
}

func abs32(v float32) float32 { return math.Float32frombits(math.Float32bits(v) &^ (1 << 31)) }

// quantizeNested writes the codes of the values x[i] − offset (all finite)
// into codes and the absmax of each block of blockSize of them into absmax:
// quant.QuantizeBlockwise of the centered values, without its checks and
// without a copy of them.
func (t *nearestTable) quantizeNested(codes []uint8, absmax, x []float32, offset float32, blockSize int) {
	for b := range absmax {
		lo := b * blockSize
		hi := min(lo+blockSize, len(x))
		xb, cb := x[lo:hi], codes[lo:hi]
		// The values are finite, so the bits of their magnitudes order like
		// the magnitudes; four chains of integer maxima ran 4× faster than
		// one of float32 max, whose NaN and signed-zero rules cost branches.
		var m [4]uint32
		i := 0
		for ; i+4 <= len(xb); i += 4 {
			m[0] = max(m[0], math.Float32bits(xb[i]-offset)&^(1<<31))
			m[1] = max(m[1], math.Float32bits(xb[i+1]-offset)&^(1<<31))
			m[2] = max(m[2], math.Float32bits(xb[i+2]-offset)&^(1<<31))
			m[3] = max(m[3], math.Float32bits(xb[i+3]-offset)&^(1<<31))
		}
		for ; i < len(xb); i++ {
			m[0] = max(m[0], math.Float32bits(xb[i]-offset)&^(1<<31))
		}
		scale := math.Float32frombits(max(m[0], m[1], m[2], m[3]))
		absmax[b] = scale
		if scale == 0 {
			zero := t.nearest(0)
			for i := range cb {
				cb[i] = zero
			}
			continue
		}
		for i, v := range xb {
			cb[i] = t.nearest((v - offset) / scale)
		}
	}
}
