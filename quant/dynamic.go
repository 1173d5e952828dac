package quant

import (
	"fmt"
	"math"
	"math/big"
	"slices"
	"strconv"
)

// DynamicMap returns the "dynamic" 8-bit quantization map of bitsandbytes,
// create_dynamic_map(signed, max_exponent_bits, total_bits) in
// bitsandbytes/functional.py: for each exponent e = 0 … maxExponentBits−1,
// the midpoints of torch.linspace(0.1, 1, k+1) scaled by 10^(e−maxExponentBits+1)
// (k doubling with e), their negatives when signed, then 0 and 1, padded with
// zeros to 256 entries and sorted ascending. Double quantization (QLoRA) uses
// DynamicMap(true, 7, 8) for the per-block absmax.
//
// The values are computed with float32 arithmetic exactly as PyTorch's CPU
// kernels do it: linspace in float32 with a fused multiply-add, filled 16
// elements at a time by two 8-lane vectors (PyTorch's AVX2 kernel), midpoints
// and scaling in float32. The result was checked bit for bit against
// bitsandbytes' formula run on Debian's PyTorch 1.13.1 (AVX2 build); builds
// that fill linspace with wider vectors can differ in the last bit of a few
// entries. bitsandbytes stores the map it used next to the codes
// (nested_quant_map), so a file is always decoded with its own map.
//
// DynamicMap panics if the parameters are ones for which bitsandbytes fails
// too: maxExponentBits < 1, totalBits outside [1, 8], or a combination that
// does not produce 2^totalBits values (bitsandbytes asserts the same).
func DynamicMap(signed bool, maxExponentBits, totalBits int) []float32 {
	if maxExponentBits < 1 || totalBits < 1 || totalBits > 8 {
		panic(fmt.Sprintf("quant: DynamicMap(signed=%v, maxExponentBits=%d, totalBits=%d): want maxExponentBits ≥ 1 and 1 ≤ totalBits ≤ 8",
			signed, maxExponentBits, totalBits))
	}
	// bitsandbytes counts one sign bit whether or not the map is signed.
	nonSignBits := totalBits - 1
	data := make([]float32, 0, 256)
	appendMeans := func(items int, exponent int) {
		scale := pow10f32(exponent)
		lin := torchLinspace32(0.1, 1, items)
		for k := 0; k+1 < len(lin); k++ {
			mean := (lin[k] + lin[k+1]) / 2
			data = append(data, scale*mean)
			if signed {
				data = append(data, -scale*mean)
			}
		}
	}
	for i := range maxExponentBits {
		shift := i + nonSignBits - maxExponentBits
		if !signed {
			shift++
		}
		// Python evaluates int(2**shift + 1): a negative shift gives a
		// fraction below one, so linspace gets a single point and no midpoint.
		items := 1
		if shift >= 0 {
			items = 1<<shift + 1
		}
		appendMeans(items, i-(maxExponentBits-1))
	}
	if extra := nonSignBits - maxExponentBits; extra > 0 {
		// The values with every exponent bit zero reuse the last exponent
		// (Python's loop variable after the loop): a scale of 10^0.
		appendMeans(1<<extra, 0)
	}
	data = append(data, 0, 1)
	if len(data) != 1<<totalBits {
		panic(fmt.Sprintf("quant: DynamicMap(signed=%v, maxExponentBits=%d, totalBits=%d) makes %d values, not 2^%d",
			signed, maxExponentBits, totalBits, len(data), totalBits))
	}
	for len(data) < 256 {
		data = append(data, 0)
	}
	slices.Sort(data)
	return data
}

// pow10f32 is float32(10**e) as Python and PyTorch compute it: the double
// nearest to 10^e, then rounded to float32 when it scales a float32 tensor.
func pow10f32(e int) float32 {
	v, err := strconv.ParseFloat("1e"+strconv.Itoa(e), 64)
	if err != nil {
		panic(err) // unreachable: the string is always a valid number
	}
	return float32(v)
}

// torchLinspace32 returns torch.linspace(start, end, steps) for float32 on
// the CPU: step = (end−start)/(steps−1) in float32; element i is
// fma(step, i, start) before the halfway point and fma(−step, steps−1−i, end)
// after it. Whole groups of 16 elements are filled by two 8-lane vectors whose
// first lane is computed that way and whose lane j adds j·step (rounded) to it.
func torchLinspace32(start, end float32, steps int) []float32 {
	out := make([]float32, steps)
	if steps == 1 {
		out[0] = start
	}
	if steps < 2 {
		return out
	}
	step := (end - start) / float32(steps-1)
	halfway := steps / 2
	point := func(i int) float32 {
		if i < halfway {
			return fusedMulAdd32(step, float32(i), start)
		}
		return fusedMulAdd32(-step, float32(steps-1-i), end)
	}
	i := 0
	for ; i+16 <= steps; i += 16 {
		for lane0 := i; lane0 < i+16; lane0 += 8 {
			base := point(lane0)
			for j := range 8 {
				out[lane0+j] = base + float32(j)*step
			}
		}
	}
	for ; i < steps; i++ {
		out[i] = point(i)
	}
	return out
}

// fusedMulAdd32 returns a·b+c rounded once to float32, like the vfmadd
// instructions a C++ compiler emits for it.
func fusedMulAdd32(a, b, c float32) float32 {
	var p, s big.Float
	p.SetPrec(128).SetFloat64(float64(a))
	p.Mul(&p, new(big.Float).SetFloat64(float64(b)))
	s.SetPrec(256).Add(&p, new(big.Float).SetFloat64(float64(c)))
	f, _ := s.Float32()
	return f
}

// QuantizeBlockwise quantizes x blockwise with an arbitrary sorted codebook of
// at most 256 values, the way bitsandbytes' CPU quantize_blockwise does it
// (csrc/common.cpp quantize_block): absmax = max|x| per block of blockSize
// consecutive elements (the last block may be partial), each x/absmax is
// replaced by the index of the nearest codebook value, distances compared in
// float32 and a tie going to the lower index. codes must have len(x) entries;
// the returned absmax has one entry per block.
//
// bitsandbytes' kernel also overwrites codebook[0] with −1 before its binary
// search (a workaround for that search), which can move values just above
// codebook[0] to the next code; this function does a true nearest search on
// the codebook as given and does not modify it. An all-zero block gets absmax
// 0 and the index of the value nearest 0 (bitsandbytes divides 0 by 0 there).
//
// It returns an error wrapping ErrBlockSize for a block size that is not a
// power of two in [MinBlockSize, MaxBlockSize], an error for mismatched
// lengths or a codebook that is empty, longer than 256, unsorted or not
// finite, and an error wrapping ErrNonFinite naming the block of the first NaN
// or ±Inf in x.
func QuantizeBlockwise(codes []uint8, x []float32, codebook []float32, blockSize int) (absmax []float32, err error) {
	if err := validateBlockSize(blockSize); err != nil {
		return nil, fmt.Errorf("quant: QuantizeBlockwise: %w", err)
	}
	if len(codes) != len(x) {
		return nil, fmt.Errorf("quant: QuantizeBlockwise: %d codes for %d values", len(codes), len(x))
	}
	if err := checkCodebook(codebook); err != nil {
		return nil, fmt.Errorf("quant: QuantizeBlockwise: %w", err)
	}
	absmax = make([]float32, NumBlocks(len(x), blockSize))
	if err := blockAbsmax(absmax, x, blockSize); err != nil {
		return nil, fmt.Errorf("quant: QuantizeBlockwise: %w", err)
	}
	keys := make([]int32, len(codebook))
	for i, c := range codebook {
		keys[i] = orderKey(c)
	}
	for b, scale := range absmax {
		lo := b * blockSize
		hi := min(lo+blockSize, len(x))
		for i, v := range x[lo:hi] {
			var normed float32
			if scale != 0 {
				normed = v / scale
			}
			codes[lo+i] = nearestCode(codebook, keys, normed)
		}
	}
	return absmax, nil
}

// orderKey maps a finite float32 to an int32 that sorts like it (with −0
// just below +0), so that searches compare integers.
func orderKey(f float32) int32 {
	b := int32(math.Float32bits(f))
	return b ^ (b >> 31 & math.MaxInt32)
}

// nearestCode returns the lowest index of the codebook value nearest v; the
// codebook is sorted ascending, has at most 256 entries, and keys holds their
// orderKey.
func nearestCode(codebook []float32, keys []int32, v float32) uint8 {
	// right is the first index whose value is ≥ v: the nearest value is it
	// or its left neighbour. Every step uses masks computed from the sign of
	// a difference instead of branches: on random data each branch would
	// mispredict half the time and stall the pipeline.
	kv := int64(orderKey(v))
	base, n := 0, len(keys)
	for n > 1 {
		half := n / 2
		below := (int64(keys[base+half-1]) - kv) >> 63 // all ones if keys[…] < kv
		base += half & int(below)
		n -= half
	}
	right := base + int(-((int64(keys[base]) - kv) >> 63))
	left := max(right-1, 0)
	right = min(right, len(codebook)-1)
	// Distances are ≥ 0, so their bit patterns order like their values; a
	// tie keeps the left (lower) index.
	distLeft := int64(math.Float32bits(abs32(v - codebook[left])))
	distRight := int64(math.Float32bits(abs32(v - codebook[right])))
	k := left + (right-left)&int((distRight-distLeft)>>63)
	for k > 0 && codebook[k-1] == codebook[k] {
		k--
	}
	return uint8(k)
}

// checkCodebook validates a codebook for QuantizeBlockwise and
// DequantizeBlockwise.
func checkCodebook(codebook []float32) error {
	if len(codebook) == 0 || len(codebook) > 256 {
		return fmt.Errorf("codebook has %d values, want 1 to 256", len(codebook))
	}
	for i, c := range codebook {
		if math.IsNaN(float64(c)) || math.IsInf(float64(c), 0) {
			return fmt.Errorf("codebook[%d] is %v: %w", i, c, ErrNonFinite)
		}
		if i > 0 && c < codebook[i-1] {
			return fmt.Errorf("codebook is not sorted: codebook[%d] = %v < codebook[%d] = %v", i, c, i-1, codebook[i-1])
		}
	}
	return nil
}

// DequantizeBlockwise writes codebook[codes[i]]·absmax[i/blockSize] (float32)
// into dst[i], the inverse of QuantizeBlockwise and of bitsandbytes'
// dequantize_blockwise. dst and codes must have the same length, absmax one
// entry per block. It returns an error naming the first code that indexes
// past the codebook, or for mismatched lengths or an invalid block size.
func DequantizeBlockwise(dst []float32, codes []uint8, absmax []float32, codebook []float32, blockSize int) error {
	if err := validateBlockSize(blockSize); err != nil {
		return fmt.Errorf("quant: DequantizeBlockwise: %w", err)
	}
	if len(dst) != len(codes) {
		return fmt.Errorf("quant: DequantizeBlockwise: destination has %d elements for %d codes", len(dst), len(codes))
	}
	if nb := NumBlocks(len(codes), blockSize); len(absmax) != nb {
		return fmt.Errorf("quant: DequantizeBlockwise: %d absmax values, %d codes in blocks of %d need %d",
			len(absmax), len(codes), blockSize, nb)
	}
	if len(codebook) == 0 || len(codebook) > 256 {
		return fmt.Errorf("quant: DequantizeBlockwise: codebook has %d values, want 1 to 256", len(codebook))
	}
	for i, c := range codes {
		if int(c) >= len(codebook) {
			return fmt.Errorf("quant: DequantizeBlockwise: code %d at index %d (block %d) is past the %d-entry codebook",
				c, i, i/blockSize, len(codebook))
		}
		dst[i] = codebook[c] * absmax[i/blockSize]
	}
	return nil
}
