package kernels

import "math"

// expShiftedScalar is ExpShifted without SIMD. It is several times faster
// than math.Exp element by element (no call, no branch per element), which
// matters because the loss takes two exponentials per logit and there are
// batch·seqLen·vocab logits.
func expShiftedScalar(dst, x []float32, m float32) float64 {
	dst = dst[:len(x)]
	// Two accumulators halve the chain of dependent additions.
	var s0, s1 float64
	i := 0
	for ; i+2 <= len(x); i += 2 {
		e0, e1 := expNear0(max(x[i]-m, -87)), expNear0(max(x[i+1]-m, -87))
		dst[i], dst[i+1] = e0, e1
		s0 += float64(e0)
		s1 += float64(e1)
	}
	if i < len(x) {
		e := expNear0(max(x[i]-m, -87))
		dst[i] = e
		s0 += float64(e)
	}
	return s0 + s1
}

// The constants of expNear0 and its vector forms: log2(e), ln 2 split so
// that k·ln2Hi is exact for |k| < 2^9, and the coefficients c3…c6 of the
// degree-6 polynomial for e^r.
const (
	log2e = 1.44269504088896341
	ln2Hi = 0.693145751953125
	ln2Lo = 1.42860682030941723212e-6
	c3    = 0.16666405302630652
	c4    = 0.041666340142296046
	c5    = 0.00837596822655386
	c6    = 0.0013942159828002571
)

// expNear0 returns e^y for −87 ≤ y ≤ 0 in float32, within about one ulp.
// With k = round(y/ln 2) and r = y − k·ln 2 (|r| ≤ ln 2 / 2), e^y = 2^k · e^r,
// where e^r comes from a degree-6 polynomial interpolating it at Chebyshev
// nodes (relative error below 3e-9 before rounding; the two lowest
// coefficients, within 5e-8 of 1 and 1/2, are rounded to them). It is kept
// small enough for the compiler to inline.
func expNear0(y float32) float32 {
	k := int32(y*log2e - 0.5) // rounds to nearest for y ≤ 0
	kf := float32(k)
	r := (y - kf*ln2Hi) - kf*ln2Lo
	r2 := r * r
	// Estrin's scheme: shorter dependency chains than Horner's.
	p := (1 + r) + r2*((0.5+c3*r)+r2*((c4+c5*r)+r2*c6))
	return p * math.Float32frombits(uint32(127+k)<<23)
}

// rowMaxScalar returns the largest element of a non-empty x.
func rowMaxScalar(x []float32) float32 {
	m0, m1 := x[0], x[0]
	i := 0
	for ; i+2 <= len(x); i += 2 {
		if x[i] > m0 {
			m0 = x[i]
		}
		if x[i+1] > m1 {
			m1 = x[i+1]
		}
	}
	if i < len(x) && x[i] > m0 {
		m0 = x[i]
	}
	if m1 > m0 {
		return m1
	}
	return m0
}

// scaleFloatsScalar multiplies every element of x by k.
func scaleFloatsScalar(x []float32, k float32) {
	i := 0
	for ; i+4 <= len(x); i += 4 {
		v := x[i : i+4 : i+4]
		v[0] *= k
		v[1] *= k
		v[2] *= k
		v[3] *= k
	}
	for ; i < len(x); i++ {
		x[i] *= k
	}
}

// softmax replaces x, non-empty, by softmax(x), computed from its maximum so
// that no exponential overflows.
func softmax(x []float32) {
	sum := expShifted(x, x, rowMax(x))
	scaleFloats(x, float32(1/sum))
}
