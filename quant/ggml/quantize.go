package ggml

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"

	"github.com/golora/golora/internal/half"
	"github.com/golora/golora/internal/parallel"
	"github.com/golora/golora/quant"
)

// The quantizers follow ggml's reference quantizers (quantize_row_*_ref in
// ggml-quants.c, the path ggml_quantize_chunk and llama-quantize take without
// an importance matrix) operation by operation in float32, so they write the
// same bytes as ggml. Every product that feeds a sum is converted to float32
// explicitly: Go may otherwise fuse it with the sum (FMA, on arm64), which
// ggml's reference build, compiled without contraction, does not.

// QuantizeQ8_0 quantizes w ([rows, cols], cols a multiple of 32) to Q8_0.
func QuantizeQ8_0(w []float32, rows, cols int) (quant.Matrix, error) {
	return Quantize(Q8_0, w, rows, cols)
}

// QuantizeQ4_0 quantizes w ([rows, cols], cols a multiple of 32) to Q4_0.
func QuantizeQ4_0(w []float32, rows, cols int) (quant.Matrix, error) {
	return Quantize(Q4_0, w, rows, cols)
}

// QuantizeQ4_1 quantizes w ([rows, cols], cols a multiple of 32) to Q4_1.
func QuantizeQ4_1(w []float32, rows, cols int) (quant.Matrix, error) {
	return Quantize(Q4_1, w, rows, cols)
}

// QuantizeQ5_0 quantizes w ([rows, cols], cols a multiple of 32) to Q5_0.
func QuantizeQ5_0(w []float32, rows, cols int) (quant.Matrix, error) {
	return Quantize(Q5_0, w, rows, cols)
}

// QuantizeQ5_1 quantizes w ([rows, cols], cols a multiple of 32) to Q5_1.
func QuantizeQ5_1(w []float32, rows, cols int) (quant.Matrix, error) {
	return Quantize(Q5_1, w, rows, cols)
}

// QuantizeQ5_K quantizes w ([rows, cols], cols a multiple of 256) to Q5_K.
func QuantizeQ5_K(w []float32, rows, cols int) (quant.Matrix, error) {
	return Quantize(Q5_K, w, rows, cols)
}

// FallbackFor returns the type llama-quantize stores a matrix with rows of
// cols elements in when the target type is asked for: the target if a row
// is a whole number of its blocks, else the 32-element type llama.cpp falls
// back to (Q4_K → Q5_0, Q5_K → Q5_1, Q6_K → Q8_0, Q2_K and Q3_K → Q4_0).
// ok is false when that does not fit either: llama.cpp then stores F16.
func FallbackFor(target Type, cols int) (t Type, ok bool) {
	if _, err := target.RowBytes(cols); err == nil {
		return target, true
	}
	t = map[Type]Type{Q4_K: Q5_0, Q5_K: Q5_1, Q6_K: Q8_0, Q2_K: Q4_0, Q3_K: Q4_0}[target]
	if _, err := t.RowBytes(cols); err != nil {
		return 0, false
	}
	return t, true
}

// QuantizerFor returns the quantizer of typ, with quant.Quantizer's
// signature; ok is false if typ has none.
func QuantizerFor(typ Type) (q func(w []float32, rows, cols int) (quant.Matrix, error), ok bool) {
	if _, ok := blockQuantizers[typ]; !ok {
		return nil, false
	}
	return func(w []float32, rows, cols int) (quant.Matrix, error) { return Quantize(typ, w, rows, cols) }, true
}

// QuantizeQ4_K quantizes w ([rows, cols], cols a multiple of 256) to Q4_K.
func QuantizeQ4_K(w []float32, rows, cols int) (quant.Matrix, error) {
	return Quantize(Q4_K, w, rows, cols)
}

// QuantizeQ6_K quantizes w ([rows, cols], cols a multiple of 256) to Q6_K.
func QuantizeQ6_K(w []float32, rows, cols int) (quant.Matrix, error) {
	return Quantize(Q6_K, w, rows, cols)
}

// blockQuantizers encode one block of x into blk.
var blockQuantizers = map[Type]func(blk []byte, x []float32){
	Q8_0: quantizeBlockQ8_0,
	Q4_0: quantizeBlockQ4_0,
	Q4_1: quantizeBlockQ4_1,
	Q5_0: quantizeBlockQ5_0,
	Q5_1: quantizeBlockQ5_1,
	Q4_K: quantizeBlockQ4_K,
	Q5_K: quantizeBlockQ5_K,
	Q6_K: quantizeBlockQ6_K,
}

// Quantize quantizes the row-major weight w of shape [rows, cols] to typ
// (any type but Q2_K and Q3_K), producing the bytes ggml's
// reference quantizer produces. It returns an error for a bad shape or
// length, a cols that is not a multiple of the block size, or a NaN or ±Inf
// weight (naming its row and column).
func Quantize(typ Type, w []float32, rows, cols int) (*Matrix, error) {
	enc, ok := blockQuantizers[typ]
	if !ok {
		return nil, fmt.Errorf("ggml: cannot quantize to %v (can: q8_0, q4_0, q4_1, q5_0, q5_1, q4_K, q5_K, q6_K)", typ)
	}
	f := formats[typ]
	if rows <= 0 || cols <= 0 || rows > math.MaxInt/cols {
		return nil, fmt.Errorf("ggml: quantize to %v: bad shape [%d, %d]", typ, rows, cols)
	}
	if len(w) != rows*cols {
		return nil, fmt.Errorf("ggml: quantize to %v: weight has %d elements, shape [%d, %d] needs %d", typ, len(w), rows, cols, rows*cols)
	}
	rowBytes, err := typ.RowBytes(cols)
	if err != nil {
		return nil, fmt.Errorf("ggml: quantize: %w", err)
	}
	for i, v := range w {
		if math.IsNaN(float64(v)) || math.IsInf(float64(v), 0) {
			return nil, fmt.Errorf("ggml: quantize to %v: weight at row %d, column %d is %v", typ, i/cols, i%cols, v)
		}
	}
	data := make([]byte, rows*rowBytes)
	nb := len(w) / f.blockElems
	parallel.For(nb, 64, 1, func(lo, hi int) {
		for b := lo; b < hi; b++ {
			enc(data[b*f.blockBytes:(b+1)*f.blockBytes], w[b*f.blockElems:(b+1)*f.blockElems])
		}
	})
	m, err := New("quantized", typ, rows, cols, data)
	if errors.Is(err, errNonFinite) {
		// The block scales are fp16: weights beyond about 65504·(the
		// format's largest code) do not fit, in ggml either.
		return nil, fmt.Errorf("ggml: quantize to %v: weights too large for fp16 block scales: %w", typ, err)
	}
	return m, err
}

// nearestInt rounds f to the nearest integer, ties to even, as ggml's
// nearest_int does (valid for |f| < 2²²).
func nearestInt(f float32) int32 {
	v := f + 12582912 // 1.5·2²³: the sum's low mantissa bits hold the integer
	return int32(math.Float32bits(v)&0x007fffff) - 0x00400000
}

func putF16(b []byte, f float32) { binary.LittleEndian.PutUint16(b, half.Float32ToF16(f)) }

func absf(x float32) float32 { return math.Float32frombits(math.Float32bits(x) &^ (1 << 31)) }

func quantizeBlockQ8_0(blk []byte, x []float32) {
	var amax float32
	for _, v := range x {
		amax = max(amax, absf(v))
	}
	d := amax / 127
	var id float32
	if d != 0 {
		id = 1 / d
	}
	putF16(blk, d)
	for j, v := range x {
		blk[2+j] = byte(int8(math.Round(float64(v * id)))) // C's roundf: halves away from zero
	}
}

// signedScale returns the step d that maps the value of x largest in
// magnitude to code −half (the symmetric formats' scale, its sign that of
// that value) and its inverse (0 when d is). The first of equal magnitudes
// wins, as in ggml.
func signedScale(x []float32, half float32) (d, id float32) {
	var amax, mx float32
	for _, v := range x {
		if amax < absf(v) {
			amax, mx = absf(v), v
		}
	}
	d = mx / -half
	if d != 0 {
		id = 1 / d
	}
	return d, id
}

func quantizeBlockQ4_0(blk []byte, x []float32) {
	d, id := signedScale(x, 8)
	putF16(blk, d)
	for j := range 16 {
		// C truncates toward zero when it converts to int8_t.
		lo := min(15, int8(float32(x[j]*id)+8.5))
		hi := min(15, int8(float32(x[j+16]*id)+8.5))
		blk[2+j] = byte(lo) | byte(hi)<<4
	}
}

// affineScale returns the step d that divides the range of x, smallest to
// largest, into levels equal steps (the offset formats' scale), its inverse
// (0 when d is) and the smallest value.
func affineScale(x []float32, levels float32) (d, id, mn float32) {
	mn, mx := float32(math.MaxFloat32), float32(-math.MaxFloat32)
	for _, v := range x {
		if v < mn {
			mn = v
		}
		if v > mx {
			mx = v
		}
	}
	d = (mx - mn) / levels
	if d != 0 {
		id = 1 / d
	}
	return d, id, mn
}

func quantizeBlockQ4_1(blk []byte, x []float32) {
	d, id, mn := affineScale(x, 15)
	putF16(blk, d)
	putF16(blk[2:], mn)
	for j := range 16 {
		lo := min(15, int8(float32((x[j]-mn)*id)+0.5))
		hi := min(15, int8(float32((x[j+16]-mn)*id)+0.5))
		blk[4+j] = byte(lo) | byte(hi)<<4
	}
}

func quantizeBlockQ5_0(blk []byte, x []float32) {
	d, id := signedScale(x, 16)
	putF16(blk, d)
	var qh uint32
	for j := range 16 {
		lo := min(31, int8(float32(x[j]*id)+16.5))
		hi := min(31, int8(float32(x[j+16]*id)+16.5))
		blk[6+j] = byte(lo)&0x0f | (byte(hi)&0x0f)<<4
		qh |= uint32(lo>>4&1)<<j | uint32(hi>>4&1)<<(j+16)
	}
	binary.LittleEndian.PutUint32(blk[2:], qh)
}

func quantizeBlockQ5_1(blk []byte, x []float32) {
	d, id, mn := affineScale(x, 31)
	putF16(blk, d)
	putF16(blk[2:], mn)
	var qh uint32
	for j := range 16 {
		lo := uint8(float32((x[j]-mn)*id) + 0.5)
		hi := uint8(float32((x[j+16]-mn)*id) + 0.5)
		blk[8+j] = lo&0x0f | (hi&0x0f)<<4
		qh |= uint32(lo>>4&1)<<j | uint32(hi>>4&1)<<(j+16)
	}
	binary.LittleEndian.PutUint32(blk[4:], qh)
}

// makeQKX2 is ggml's make_qkx2_quants for n = 32, rdelta = 0.1 and squared
// error: it picks a scale and a min ≤ 0 for the 32 values x under the
// weights, trying nstep+1 scales from (nmax+rmin)/range, and writes codes in
// [0, nmax] to L. It returns the scale and −min.
func makeQKX2(x, weights *[32]float32, L *[32]uint8, nmax int32, rmin float32, nstep int) (scale, negMin float32) {
	const rdelta = float32(0.1)
	var Laux [32]uint8
	mn, mx := x[0], x[0]
	sumW := weights[0]
	sumX := sumW * x[0]
	for i := 1; i < 32; i++ {
		if x[i] < mn {
			mn = x[i]
		}
		if x[i] > mx {
			mx = x[i]
		}
		sumW += weights[i]
		sumX += float32(weights[i] * x[i])
	}
	if mn > 0 {
		mn = 0
	}
	if mx == mn {
		*L = [32]uint8{}
		return 0, -mn
	}
	iscale := float32(nmax) / (mx - mn)
	scale = 1 / iscale
	var bestErr float32
	for i := range 32 {
		l := nearestInt(float32(iscale * (x[i] - mn)))
		L[i] = uint8(max(0, min(nmax, l)))
		diff := float32(scale*float32(L[i])) + mn - x[i]
		bestErr += float32(weights[i] * float32(diff*diff))
	}
	for is := 0; is <= nstep; is++ {
		iscale = (float32(rmin+float32(rdelta*float32(is))) + float32(nmax)) / (mx - mn)
		var sumL, sumL2, sumXL float32
		for i := range 32 {
			l := max(0, min(nmax, nearestInt(float32(iscale*(x[i]-mn)))))
			Laux[i] = uint8(l)
			wl := float32(weights[i] * float32(l))
			sumL += wl
			sumL2 += float32(wl * float32(l))
			sumXL += float32(wl * x[i])
		}
		D := float32(sumW*sumL2) - float32(sumL*sumL)
		if D <= 0 {
			continue
		}
		thisScale := (float32(sumW*sumXL) - float32(sumX*sumL)) / D
		thisMin := (float32(sumL2*sumX) - float32(sumL*sumXL)) / D
		if thisMin > 0 {
			thisMin = 0
			thisScale = sumXL / sumL2
		}
		var curErr float32
		for i := range 32 {
			diff := float32(thisScale*float32(Laux[i])) + thisMin - x[i]
			curErr += float32(weights[i] * float32(diff*diff))
		}
		if curErr < bestErr {
			*L = Laux
			bestErr, scale, mn = curErr, thisScale, thisMin
		}
	}
	return scale, -mn
}

// kQuantScales is the part of ggml's Q4_K and Q5_K reference quantizers they
// share: per sub-block of 32 a scale and min from makeQKX2 (codes up to
// nmax), both quantized to 6 bits under the fp16 super-scales d and dmin
// written to blk[0:4] and packed into blk[4:16]; then every element's code
// under the quantized scales. It returns the codes.
func kQuantScales(blk []byte, x []float32, nmax int32, rmin float32, nstep int) (L [256]uint8) {
	var scales, mins [8]float32
	var maxScale, maxMin float32
	for j := range 8 {
		xs := (*[32]float32)(x[32*j:])
		var sumX2 float32
		for _, v := range xs {
			sumX2 += float32(v * v)
		}
		avX := float32(math.Sqrt(float64(sumX2 / 32)))
		var weights [32]float32
		for l, v := range xs {
			weights[l] = avX + absf(v)
		}
		scales[j], mins[j] = makeQKX2(xs, &weights, (*[32]uint8)(L[32*j:]), nmax, rmin, nstep)
		if scales[j] > maxScale {
			maxScale = scales[j]
		}
		if mins[j] > maxMin {
			maxMin = mins[j]
		}
	}
	var invScale, invMin float32
	if maxScale > 0 {
		invScale = 63 / maxScale
	}
	if maxMin > 0 {
		invMin = 63 / maxMin
	}
	s := (*[12]byte)(blk[4:])
	for j := range 8 {
		ls := min(63, uint8(nearestInt(float32(invScale*scales[j]))))
		lm := min(63, uint8(nearestInt(float32(invMin*mins[j]))))
		if j < 4 {
			s[j], s[j+4] = ls, lm
		} else {
			s[j+4] = ls&0x0f | (lm&0x0f)<<4
			s[j-4] |= (ls >> 4) << 6
			s[j] |= (lm >> 4) << 6
		}
	}
	putF16(blk, maxScale/63)
	putF16(blk[2:], maxMin/63)
	d, dmin := f16(blk), f16(blk[2:])
	for j := range 8 {
		sc, m := scaleMinK4(j, s)
		dj := d * float32(sc)
		if dj == 0 {
			continue
		}
		dm := float32(dmin * float32(m))
		for i := range 32 {
			L[32*j+i] = uint8(max(0, min(nmax, nearestInt((x[32*j+i]+dm)/dj))))
		}
	}
	return L
}

func quantizeBlockQ4_K(blk []byte, x []float32) {
	L := kQuantScales(blk, x, 15, -1, 20)
	q := blk[16:144]
	for c := range 4 {
		for l := range 32 {
			q[32*c+l] = L[64*c+l] | L[64*c+l+32]<<4
		}
	}
}

func quantizeBlockQ5_K(blk []byte, x []float32) {
	L := kQuantScales(blk, x, 31, -0.5, 15)
	qh := blk[16:48]
	q := blk[48:176]
	clear(qh)
	for c := range 4 {
		for l := range 32 {
			lo, hi := L[64*c+l], L[64*c+l+32]
			qh[l] |= (lo>>4)<<(2*c) | (hi>>4)<<(2*c+1)
			q[32*c+l] = lo&0x0f | (hi&0x0f)<<4
		}
	}
}

// makeQX is ggml's make_qx_quants for n = 16, nmax = 32, weights x² (rmse
// type 1): it writes codes in [0, 64) to L and returns the scale.
func makeQX(x *[16]float32, L *[16]int8) float32 {
	const nmax = 32
	var mx, amax float32
	for _, v := range x {
		if a := absf(v); a > amax {
			amax, mx = a, v
		}
	}
	if amax < 1e-15 { // ggml's GROUP_MAX_EPS
		*L = [16]int8{}
		return 0
	}
	sums := func(iscale float32, store bool) (sumLX, sumL2 float32) {
		for i, v := range x {
			l := max(-nmax, min(nmax-1, nearestInt(float32(iscale*v))))
			if store {
				L[i] = int8(l + nmax)
			}
			w := v * v
			sumLX += float32(float32(w*v) * float32(l))
			sumL2 += float32(float32(w*float32(l)) * float32(l))
		}
		return sumLX, sumL2
	}
	iscale := -nmax / mx
	sumLX, sumL2 := sums(iscale, true)
	var scale float32
	if sumL2 != 0 {
		scale = sumLX / sumL2
	}
	best := scale * sumLX
	for is := -9; is <= 9; is++ {
		if is == 0 {
			continue
		}
		iscale = -(nmax + float32(float32(0.1)*float32(is))) / mx
		sumLX, sumL2 = sums(iscale, false)
		if sumL2 > 0 && float32(sumLX*sumLX) > float32(best*sumL2) {
			sums(iscale, true)
			scale = sumLX / sumL2
			best = scale * sumLX
		}
	}
	return scale
}

func quantizeBlockQ6_K(blk []byte, x []float32) {
	var L [256]int8
	var scales [16]float32
	var maxScale, maxAbsScale float32
	for ib := range 16 {
		scales[ib] = makeQX((*[16]float32)(x[16*ib:]), (*[16]int8)(L[16*ib:]))
		if a := absf(scales[ib]); a > maxAbsScale {
			maxAbsScale, maxScale = a, scales[ib]
		}
	}
	if maxAbsScale < 1e-15 {
		clear(blk)
		return
	}
	iscale := -128 / maxScale
	putF16(blk[208:], 1/iscale)
	sc := blk[192:208]
	for ib := range 16 {
		sc[ib] = byte(int8(min(127, nearestInt(float32(iscale*scales[ib])))))
	}
	d := f16(blk[208:])
	for j := range 16 {
		dj := d * float32(int8(sc[j]))
		if dj == 0 {
			continue
		}
		for i := range 16 {
			L[16*j+i] = int8(max(-32, min(31, nearestInt(x[16*j+i]/dj))) + 32)
		}
	}
	for h := range 2 {
		ql := blk[64*h : 64*h+64]
		qh := blk[128+32*h : 128+32*h+32]
		for l := range 32 {
			q1, q2, q3, q4 := uint8(L[128*h+l]), uint8(L[128*h+l+32]), uint8(L[128*h+l+64]), uint8(L[128*h+l+96])
			ql[l] = q1&0x0f | (q3&0x0f)<<4
			ql[l+32] = q2&0x0f | (q4&0x0f)<<4
			qh[l] = q1>>4 | (q2>>4)<<2 | (q3>>4)<<4 | (q4>>4)<<6
		}
	}
}
