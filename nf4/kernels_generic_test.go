//go:build !(goexperiment.simd && amd64)

package nf4

// dotBaseline is the float32 dot product of the unfused benchmark baseline.
func dotBaseline(a, b []float32) float32 { return dotScalar(a, b) }
