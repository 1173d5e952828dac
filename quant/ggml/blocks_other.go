//go:build !amd64

package ggml

func dequantQ8_0(dst []float32, row []byte) { dequantQ8_0Go(dst, row) }

func dotRows(_ Type, f *format, y []float32, w []byte, x []float32) { dotRowsGo(f, y, w, x) }

func vectorDot() bool { return false }

func paired(Type) bool { return false }

func dotRowPairs(_ Type, f *format, y []float32, w []byte, x []float32, k, half int) {
	rowBytes := len(x) / f.blockElems * f.blockBytes
	dotRowsGo(f, y[:k], w[:k*rowBytes], x)
	dotRowsGo(f, y[half:half+k], w[half*rowBytes:(half+k)*rowBytes], x)
}
