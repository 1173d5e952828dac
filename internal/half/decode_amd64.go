package half

import "github.com/golora/golora/internal/cpu"

// The vector decoders (decode_amd64.s) convert n/32 (AVX-512) or n/16
// (AVX2) steps of 32 or 16 elements; the rest goes to the scalar code. A
// call covers at most decodeChunk elements, so it returns within tens of
// microseconds (assembly is not preemptible).

//go:noescape
func decodeBF16AVX512(dst *float32, src *byte, n int)

//go:noescape
func decodeBF16FiniteAVX512(dst *float32, src *byte, n int) (nonFinite bool)

//go:noescape
func decodeBF16AVX2(dst *float32, src *byte, n int)

//go:noescape
func decodeF16AVX512(dst *float32, src *byte, n int)

//go:noescape
func decodeF16AVX2(dst *float32, src *byte, n int)

// decodeAt decodes with the kernels of level l; f16 chooses F16 over BF16.
func decodeAt(l cpu.Level, f16 bool, dst []float32, src []byte) {
	src = src[:2*len(dst)]
	step := 16
	if l >= cpu.AVX512 {
		step = 32
	}
	done := 0
	if l > cpu.Generic {
		for done+step <= len(dst) {
			n := min(decodeChunk, (len(dst)-done)/step*step)
			d, s := &dst[done], &src[2*done]
			switch {
			case l >= cpu.AVX512 && f16:
				decodeF16AVX512(d, s, n)
			case l >= cpu.AVX512:
				decodeBF16AVX512(d, s, n)
			case f16:
				decodeF16AVX2(d, s, n)
			default:
				decodeBF16AVX2(d, s, n)
			}
			done += n
		}
	}
	if f16 {
		decodeF16Scalar(dst[done:], src[2*done:])
	} else {
		decodeBF16Scalar(dst[done:], src[2*done:])
	}
}

// decodeBF16FiniteAt is decodeAt for BF16 that also reports whether every
// value is finite: with AVX-512 the decoding loop checks them as it goes;
// otherwise the BF16 words are checked after decoding (finiteLE).
func decodeBF16FiniteAt(l cpu.Level, dst []float32, src []byte) bool {
	src = src[:2*len(dst)]
	if l < cpu.AVX512 {
		decodeAt(l, false, dst, src)
		return finiteLE(src, bf16Exponent)
	}
	finite := true
	done := 0
	for done+32 <= len(dst) {
		n := min(decodeChunk, (len(dst)-done)/32*32)
		if decodeBF16FiniteAVX512(&dst[done], &src[2*done], n) {
			finite = false
		}
		done += n
	}
	decodeBF16Scalar(dst[done:], src[2*done:])
	return finite && finiteLE(src[2*done:], bf16Exponent)
}
