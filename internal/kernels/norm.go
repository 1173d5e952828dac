package kernels

import "math"

// RMSNorm writes x / sqrt(mean(x²) + eps) · w into dst for each row of
// len(w) values of x; dst may be x. The mean is accumulated in float64.
func RMSNorm(dst, x, w []float32, eps float64) {
	d := len(w)
	for r := 0; r+d <= len(x); r += d {
		xr, yr := x[r:r+d], dst[r:r+d]
		inv := float32(invRMS(xr, eps))
		for i, wi := range w {
			yr[i] = xr[i] * inv * wi
		}
	}
}

// RMSNormBackward writes the gradient of RMSNorm with respect to x, given the
// output gradient dy, into dx, row by row. With r = 1/sqrt(mean(x²)+eps) and
// g = w ⊙ dy, dx = r·g − (r³/d)·(g·x)·x.
func RMSNormBackward(dx, x, dy, w []float32, eps float64) {
	d := len(w)
	for r := 0; r+d <= len(x); r += d {
		xr, dyr, dxr := x[r:r+d], dy[r:r+d], dx[r:r+d]
		inv := invRMS(xr, eps)
		var gx float64
		for i, wi := range w {
			gx += float64(wi*dyr[i]) * float64(xr[i])
		}
		c := float32(inv * inv * inv * gx / float64(d))
		r32 := float32(inv)
		for i, wi := range w {
			dxr[i] = r32*wi*dyr[i] - c*xr[i]
		}
	}
}

// invRMS returns 1 / sqrt(mean(x²) + eps), accumulated in float64 in
// four interleaved sums: one chain of dependent additions took a 32-row
// batch step's norms of 288 about 10 µs each, on one core while the
// others waited. The float64 sums of float32 squares differ from one
// chain's in their last bits at most, which the float32 result rounds
// away but for rare ties.
func invRMS(x []float32, eps float64) float64 {
	var s0, s1, s2, s3 float64
	i := 0
	for ; i+4 <= len(x); i += 4 {
		v := x[i : i+4 : i+4]
		a, b, c, d := float64(v[0]), float64(v[1]), float64(v[2]), float64(v[3])
		s0 += a * a
		s1 += b * b
		s2 += c * c
		s3 += d * d
	}
	for ; i < len(x); i++ {
		s0 += float64(x[i]) * float64(x[i])
	}
	ss := (s0 + s1) + (s2 + s3)
	return 1 / math.Sqrt(ss/float64(len(x))+eps)
}
