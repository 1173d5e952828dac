//go:build !amd64

package kernels

// expShifted writes e^(x[i] − m) into dst[i] for every i and returns their
// sum; m must be at least max(x), so every exponent is ≤ 0. dst may be x.
// Exponents below −87 are raised to −87: their results, under 1.6e-38 (the
// bottom of float32's normal range), are noise next to the maximum's 1.
// Each result is within about one ulp of the exact value.
func expShifted(dst, x []float32, m float32) float64 { return expShiftedScalar(dst, x, m) }

// rowMax returns the largest element of a non-empty x.
func rowMax(x []float32) float32 { return rowMaxScalar(x) }

// scaleFloats multiplies every element of x by k.
func scaleFloats(x []float32, k float32) { scaleFloatsScalar(x, k) }
