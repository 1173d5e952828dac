package half

import "github.com/golora/golora/internal/cpu"

// The vector decoders (decode_amd64.s) convert n/32 (AVX-512) or n/16
// (AVX2) steps of 32 or 16 elements; the rest goes to the scalar code. A
// call covers at most decodeChunk elements, so it returns within tens of
// microseconds (assembly is not preemptible).

//go:noescape
func decodeBF16AVX512(dst *float32, src *byte, n int)

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
