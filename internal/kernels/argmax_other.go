//go:build !amd64

package kernels

func maxVec(x []float32) (float32, bool, int) { return 0, false, 0 }

func indexVec(x []float32, v float32) (int, int) { return -1, 0 }
