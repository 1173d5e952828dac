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

// invRMS returns 1 / sqrt(mean(x²) + eps), accumulated in float64.
func invRMS(x []float32, eps float64) float64 {
	var ss float64
	for _, v := range x {
		ss += float64(v) * float64(v)
	}
	return 1 / math.Sqrt(ss/float64(len(x))+eps)
}
