package nf4

import (
	"math"
	"math/rand/v2"
	"testing"

	"github.com/golora/golora/quant"
	"github.com/stretchr/testify/require"
)

// TestNestedMatchesQuantizeBlockwise checks the bucketed search of the
// double quantization against quant.QuantizeBlockwise (the reference it
// replaces) on every code value and every midpoint between adjacent codes
// and their float32 neighbours (absmax 1, so the quotients are exact), ±0,
// subnormals, all-zero blocks, random values of many scales and a partial
// last block.
func TestNestedMatchesQuantizeBlockwise(t *testing.T) {
	code := quant.DynamicMap(true, 7, 8)
	var x []float32
	for i, c := range code {
		x = append(x, c, math.Nextafter32(c, -2), math.Nextafter32(c, 2))
		if i > 0 {
			mid := code[i-1] + (c-code[i-1])/2
			x = append(x, mid, math.Nextafter32(mid, -2), math.Nextafter32(mid, 2))
		}
	}
	x = append(x, 0, float32(math.Copysign(0, -1)), math.SmallestNonzeroFloat32, -math.SmallestNonzeroFloat32)
	for len(x)%NestedBlockSize != 0 {
		x = append(x, 0.5)
	}
	x[0] = -1 // absmax 1 for the first blocks
	x = append(x, make([]float32, NestedBlockSize)...)
	r := rand.New(rand.NewPCG(5, 6))
	for _, scale := range []float64{1e-30, 1e-6, 0.01, 1, 3e5} {
		for range 3 * NestedBlockSize {
			x = append(x, float32(r.NormFloat64()*scale))
		}
	}
	for range 2*NestedBlockSize + 77 {
		x = append(x, math.Float32frombits(r.Uint32()&0x807fffff)) // subnormals
	}
	wantCodes := make([]uint8, len(x))
	wantAbsmax, err := quant.QuantizeBlockwise(wantCodes, x, code, NestedBlockSize)
	require.NoError(t, err)
	codes := make([]uint8, len(x))
	absmax := make([]float32, len(wantAbsmax))
	newNearestTable(code).quantizeNested(codes, absmax, x, 0, NestedBlockSize)
	require.Equal(t, wantAbsmax, absmax)
	for i := range x {
		require.Equalf(t, wantCodes[i], codes[i], "element %d = %v (absmax %v)", i, x[i], absmax[i/NestedBlockSize])
	}

	// Centering on the fly gives the codes of the centered copy.
	const offset = 0.0173
	centered := make([]float32, len(x))
	for i, v := range x {
		centered[i] = v - offset
	}
	wantAbsmax, err = quant.QuantizeBlockwise(wantCodes, centered, code, NestedBlockSize)
	require.NoError(t, err)
	newNearestTable(code).quantizeNested(codes, absmax, x, offset, NestedBlockSize)
	require.Equal(t, wantAbsmax, absmax)
	require.Equal(t, wantCodes, codes)
}

// TestNearestDirectMatchesSearch checks the per-bucket codes of the double
// quantization's table against its search: in every one of the 65,536
// buckets, at both ends and at random keys inside, over the finite floats.
func TestNearestDirectMatchesSearch(t *testing.T) {
	tab := newNearestTable(quant.DynamicMap(true, 7, 8))
	r := rand.New(rand.NewPCG(7, 8))
	direct := 0
	for i := range tab.split {
		low := int32(i-len(tab.split)/2) << nestedBucketShift
		keys := []int32{low, low | (1<<nestedBucketShift - 1)}
		for range 6 {
			keys = append(keys, low|int32(r.IntN(1<<nestedBucketShift)))
		}
		if tab.split[i] != badSplit {
			direct++
		}
		for _, k := range keys {
			v := keyFloat(k)
			if math.IsNaN(float64(v)) || math.IsInf(float64(v), 0) {
				continue
			}
			if got, want := tab.nearest(v), tab.search(v); got != want {
				t.Fatalf("bucket %d, value %g: nearest %d, search %d", i, v, got, want)
			}
		}
	}
	t.Logf("%d of %d buckets answered without a search", direct, len(tab.split))
}

// BenchmarkNearest runs the double quantization's code search with the
// per-bucket table and without it, over centered absmax values of a
// normally distributed matrix.
func BenchmarkNearest(b *testing.B) {
	tab := newNearestTable(quant.DynamicMap(true, 7, 8))
	r := rand.New(rand.NewPCG(9, 10))
	x := make([]float32, 1<<16)
	for i := range x {
		x[i] = float32(math.Abs(r.NormFloat64())*0.02 - 0.016)
	}
	for _, tc := range []struct {
		name string
		f    func(float32) uint8
	}{{"direct", tab.nearest}, {"search", tab.search}} {
		b.Run(tc.name, func(b *testing.B) {
			var sink uint8
			for b.Loop() {
				for _, v := range x {
					sink += tc.f(v / 0.05)
				}
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(x)), "ns/value")
			_ = sink
		})
	}
}
