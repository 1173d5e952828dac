package kernels

import "math"

// RopeInvFreq returns the rotary frequencies theta^(−2i/headDim) of the
// headDim/2 pairs of a head.
func RopeInvFreq(headDim int, theta float64) []float64 {
	f := make([]float64, headDim/2)
	for i := range f {
		f[i] = math.Pow(theta, -2*float64(i)/float64(headDim))
	}
	return f
}

// RopeAngles fills cos and sin (len(invFreq) each) with the rotation of
// position pos; the angles are computed in float64 so long positions keep
// their precision.
func RopeAngles(cos, sin []float32, pos int, invFreq []float64) {
	RopeAnglesScaled(cos, sin, pos, invFreq, 1)
}

// RopeAnglesScaled is RopeAngles with cos and sin multiplied by scale
// (longrope's attention factor).
func RopeAnglesScaled(cos, sin []float32, pos int, invFreq []float64, scale float32) {
	p := float64(pos)
	for i, f := range invFreq {
		s, c := math.Sincos(p * f)
		cos[i] = float32(c) * scale
		sin[i] = float32(s) * scale
	}
}

// Rope rotates every head of headDim values of the row x into dst (which may
// be x) in Hugging Face's rotate_half layout. With half = len(cos) (at most
// headDim/2), element i < half pairs with i + half and the pair turns by the
// angle whose cosine and sine are cos[i] and sin[i]; elements from 2·half on
// pass unrotated (partial rotary embeddings, as Phi-3's). With inverse it
// turns by the opposite angle, which is also the rotation's gradient.
func Rope(dst, x, cos, sin []float32, headDim int, inverse bool) {
	half := min(len(cos), headDim/2)
	cos, sin = cos[:half], sin[:half]
	for off := 0; off+headDim <= len(x); off += headDim {
		xa, xb := x[off:off+half], x[off+half:off+2*half]
		ya, yb := dst[off:off+half], dst[off+half:off+2*half]
		if 2*half < headDim {
			copy(dst[off+2*half:off+headDim], x[off+2*half:off+headDim])
		}
		if inverse {
			ropeHalf(ya, yb, xa, xb, cos, sin, -1)
		} else {
			ropeHalf(ya, yb, xa, xb, cos, sin, 1)
		}
	}
}

// ropeHalf turns the pairs (xa[i], xb[i]) by the angles of cos and sin, the
// sines times sign (±1: exact), into ya and yb. The slices have len(cos)
// elements; the loop is apart from Rope's so that the compiler proves its
// indices in range and keeps sign out of it (a batch step rotates some
// tens of thousands of pairs).
func ropeHalf(ya, yb, xa, xb, cos, sin []float32, sign float32) {
	n := len(cos)
	ya, yb, xa, xb, sin = ya[:n], yb[:n], xa[:n], xb[:n], sin[:n]
	for i := range n {
		a, b, c, s := xa[i], xb[i], cos[i], sign*sin[i]
		ya[i] = a*c - b*s
		yb[i] = a*s + b*c
	}
}
