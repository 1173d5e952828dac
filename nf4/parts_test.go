package nf4

import (
	"math"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestFromPartsErrors(t *testing.T) {
	m, err := Quantize(gaussian(53, 10*64, 0.02), 10, 64, Options{})
	require.NoError(t, err)
	good := m.Parts()
	for _, tc := range []struct {
		edit func(*Parts)
		want string
	}{
		{func(p *Parts) { p.Packed = p.Packed[1:] }, "319 packed bytes"},
		{func(p *Parts) { p.BlockSize = 96 }, "invalid block size 96"},
		{func(p *Parts) { p.Rows = 0 }, "must be positive"},
		{func(p *Parts) { p.QuantAbsmax = nil }, "no absmax"},
		{func(p *Parts) { p.Absmax = make([]float32, 10) }, "both"},
		{func(p *Parts) { p.QuantAbsmax = p.QuantAbsmax[:9] }, "9 quantized absmax values"},
		{func(p *Parts) { p.NestedAbsmax = nil }, "0 nested absmax values"},
		{func(p *Parts) { p.NestedAbsmax = []float32{-1} }, "nested absmax 0 is -1"},
		{func(p *Parts) { p.NestedCode = p.NestedCode[:16] }, "nested code has 16 values"},
		{func(p *Parts) { p.NestedBlockSize = 3 }, "nested block size"},
		{func(p *Parts) { p.Offset = float32(math.NaN()) }, "nested offset is NaN"},
		{func(p *Parts) { p.DType = "float64" }, `dtype "float64"`},
	} {
		p := good
		tc.edit(&p)
		_, err := FromParts(p)
		require.ErrorContains(t, err, tc.want)
	}
	p := good
	p.NestedCode, p.NestedBlockSize, p.DType = nil, 0, ""
	got, err := FromParts(p)
	require.NoError(t, err, "defaults")
	require.Equal(t, good, got.Parts())
}
