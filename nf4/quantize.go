package nf4

import "math"

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
}

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
	return t
}

// nearest returns the code of v.
func (t *nearestTable) nearest(v float32) uint8 {
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
		var scale float32
		for _, v := range x[lo:hi] {
			scale = max(scale, abs32(v-offset))
		}
		absmax[b] = scale
		for i, v := range x[lo:hi] {
			var normed float32
			if scale != 0 {
				normed = (v - offset) / scale
			}
			codes[lo+i] = t.nearest(normed)
		}
	}
}
