package ggml

import (
	"encoding/binary"

	"github.com/golora/golora/internal/half"
)

// The kernels below decode ggml's block structs (ggml-common.h) in place.
// Dequantization evaluates each element with the same float32 operations in
// the same order as ggml's reference dequantizers, rounding every product
// explicitly, so the results are bit-identical. The dot kernels sum in the
// order of their vector kernels (order.go).

// f16 decodes the little-endian fp16 at b[0:2].
func f16(b []byte) float32 { return half.F16ToFloat32(binary.LittleEndian.Uint16(b)) }

// Q8_0: fp16 d, 32 int8 codes; x = q·d.

// dequantQ8_0Go is dequantQ8_0 in Go, for every CPU.
func dequantQ8_0Go(dst []float32, row []byte) {
	for b := 0; b*32 < len(dst); b++ {
		blk := row[b*34 : b*34+34]
		d := f16(blk)
		q := (*[32]byte)(blk[2:])
		out := (*[32]float32)(dst[b*32:])
		for j := range out {
			out[j] = float32(int8(q[j])) * d
		}
	}
}

// dotQ8_0 sums in the vector kernels' order (order.go).
func dotQ8_0(row []byte, x []float32) float32 {
	var acc [8]float32
	for b := 0; b*32 < len(x); b++ {
		blk := row[b*34 : b*34+34]
		d := f16(blk)
		q := (*[32]byte)(blk[2:])
		xs := (*[32]float32)(x[b*32:])
		for k := range acc {
			p := float32(float32(int8(q[k])) * xs[k])
			p += float32(float32(int8(q[k+8])) * xs[k+8])
			p += float32(float32(int8(q[k+16])) * xs[k+16])
			p += float32(float32(int8(q[k+24])) * xs[k+24])
			acc[k] += float32(d * p)
		}
	}
	return sum8(&acc)
}

// Q4_0: fp16 d, 16 bytes; byte j holds element j (low nibble) and j+16
// (high nibble); x = (q−8)·d.

func dequantQ4_0(dst []float32, row []byte) {
	for b := 0; b*32 < len(dst); b++ {
		blk := row[b*18 : b*18+18]
		d := f16(blk)
		q := (*[16]byte)(blk[2:])
		out := (*[32]float32)(dst[b*32:])
		for j := range 16 {
			out[j] = float32(int32(q[j]&0x0f)-8) * d
			out[j+16] = float32(int32(q[j]>>4)-8) * d
		}
	}
}

// dotQ4_0 sums in the vector kernels' order (order.go).
func dotQ4_0(row []byte, x []float32) float32 {
	var acc [8]float32
	for b := 0; b*32 < len(x); b++ {
		blk := row[b*18 : b*18+18]
		d := f16(blk)
		q := (*[16]byte)(blk[2:])
		xs := (*[32]float32)(x[b*32:])
		for k := range acc {
			p := float32(float32(int32(q[k]&0x0f)-8) * xs[k])
			p += float32(float32(int32(q[k+8]&0x0f)-8) * xs[k+8])
			p += float32(float32(int32(q[k]>>4)-8) * xs[k+16])
			p += float32(float32(int32(q[k+8]>>4)-8) * xs[k+24])
			acc[k] += float32(d * p)
		}
	}
	return sum8(&acc)
}

// Q5_0: fp16 d, uint32 qh of fifth bits (bit j for element j), 16 bytes of
// low nibbles as Q4_0; x = (q−16)·d.

func dequantQ5_0(dst []float32, row []byte) {
	for b := 0; b*32 < len(dst); b++ {
		blk := row[b*22 : b*22+22]
		d := f16(blk)
		qh := binary.LittleEndian.Uint32(blk[2:])
		q := (*[16]byte)(blk[6:])
		out := (*[32]float32)(dst[b*32:])
		for j := range 16 {
			lo := uint32(q[j]&0x0f) | (qh&1)<<4
			hi := uint32(q[j]>>4) | (qh>>16&1)<<4
			qh >>= 1
			out[j] = float32(int32(lo)-16) * d
			out[j+16] = float32(int32(hi)-16) * d
		}
	}
}

// dotQ5_0 sums in the vector kernels' order (order.go).
func dotQ5_0(row []byte, x []float32) float32 {
	var acc [8]float32
	for b := 0; b*32 < len(x); b++ {
		blk := row[b*22 : b*22+22]
		d := f16(blk)
		qh := binary.LittleEndian.Uint32(blk[2:])
		q := (*[16]byte)(blk[6:])
		xs := (*[32]float32)(x[b*32:])
		for k := range acc {
			h := qh >> k << 4 // code k's fifth bit at bit 4, k+8's at 12, …
			p := float32(float32(int32(uint32(q[k]&0x0f)|h&0x10)-16) * xs[k])
			p += float32(float32(int32(uint32(q[k+8]&0x0f)|h>>8&0x10)-16) * xs[k+8])
			p += float32(float32(int32(uint32(q[k]>>4)|h>>16&0x10)-16) * xs[k+16])
			p += float32(float32(int32(uint32(q[k+8]>>4)|h>>24&0x10)-16) * xs[k+24])
			acc[k] += float32(d * p)
		}
	}
	return sum8(&acc)
}

// Q5_1: fp16 d, fp16 m, qh and nibbles as Q5_0; x = q·d + m.

func dequantQ5_1(dst []float32, row []byte) {
	for b := 0; b*32 < len(dst); b++ {
		blk := row[b*24 : b*24+24]
		d, m := f16(blk), f16(blk[2:])
		qh := binary.LittleEndian.Uint32(blk[4:])
		q := (*[16]byte)(blk[8:])
		out := (*[32]float32)(dst[b*32:])
		for j := range 16 {
			lo := uint32(q[j]&0x0f) | (qh&1)<<4
			hi := uint32(q[j]>>4) | (qh>>16&1)<<4
			qh >>= 1
			out[j] = float32(float32(lo)*d) + m
			out[j+16] = float32(float32(hi)*d) + m
		}
	}
}

// dotQ5_1 sums in the vector kernels' order (order.go).
func dotQ5_1(row []byte, x []float32) float32 {
	var acc [8]float32
	for b := 0; b*32 < len(x); b++ {
		blk := row[b*24 : b*24+24]
		d, m := f16(blk), f16(blk[2:])
		qh := binary.LittleEndian.Uint32(blk[4:])
		q := (*[16]byte)(blk[8:])
		xs := (*[32]float32)(x[b*32:])
		for k := range acc {
			h := qh >> k << 4 // code k's fifth bit at bit 4, k+8's at 12, …
			p := float32(float32(uint32(q[k]&0x0f)|h&0x10) * xs[k])
			p += float32(float32(uint32(q[k+8]&0x0f)|h>>8&0x10) * xs[k+8])
			p += float32(float32(uint32(q[k]>>4)|h>>16&0x10) * xs[k+16])
			p += float32(float32(uint32(q[k+8]>>4)|h>>24&0x10) * xs[k+24])
			acc[k] += float32(d * p)
			acc[k] += float32(m * (((xs[k] + xs[k+8]) + xs[k+16]) + xs[k+24]))
		}
	}
	return sum8(&acc)
}

// scaleMinK4 returns the 6-bit scale and min of sub-block j (0–7) from the
// 12 packed bytes of a Q4_K or Q5_K block: sub-blocks 0–3 keep theirs in the
// low 6 bits of bytes j and j+4; 4–7 split theirs between the nibbles of
// byte j+4 and the top 2 bits of bytes j−4 and j.
func scaleMinK4(j int, s *[12]byte) (sc, m uint8) {
	if j < 4 {
		return s[j] & 63, s[j+4] & 63
	}
	return s[j+4]&0x0f | (s[j-4]>>6)<<4, s[j+4]>>4 | (s[j]>>6)<<4
}

// Q4_K: super-block of 256 = 8 sub-blocks of 32. fp16 d, fp16 dmin, 12 bytes
// of 6-bit scales and mins, 128 bytes of nibbles: each 32-byte group holds
// sub-block 2c in its low nibbles and 2c+1 in its high ones;
// x = (d·sc)·q − dmin·m.

func dequantQ4_K(dst []float32, row []byte) {
	for b := 0; b*256 < len(dst); b++ {
		blk := row[b*144 : b*144+144]
		d, dmin := f16(blk), f16(blk[2:])
		s := (*[12]byte)(blk[4:])
		for c := range 4 {
			q := (*[32]byte)(blk[16+32*c:])
			sc1, m1 := scaleMinK4(2*c, s)
			sc2, m2 := scaleMinK4(2*c+1, s)
			d1, min1 := d*float32(sc1), float32(dmin*float32(m1))
			d2, min2 := d*float32(sc2), float32(dmin*float32(m2))
			lo := (*[32]float32)(dst[b*256+64*c:])
			hi := (*[32]float32)(dst[b*256+64*c+32:])
			for l := range 32 {
				lo[l] = float32(d1*float32(q[l]&0x0f)) - min1
				hi[l] = float32(d2*float32(q[l]>>4)) - min2
			}
		}
	}
}

// dotQ4_K sums in the vector kernels' order (order.go): each sub-block's
// code products and its x in 8 lanes, times its scale and min into two
// more, which the block's d and dmin then scale into the row's lanes.
func dotQ4_K(row []byte, x []float32) float32 {
	var acc [8]float32
	for b := 0; b*256 < len(x); b++ {
		blk := row[b*144 : b*144+144]
		s := (*[12]byte)(blk[4:])
		var sd, sm [8]float32
		for c := range 4 {
			q := (*[32]byte)(blk[16+32*c:])
			lo := (*[32]float32)(x[b*256+64*c:])
			hi := (*[32]float32)(x[b*256+64*c+32:])
			sc1, m1 := scaleMinK4(2*c, s)
			sc2, m2 := scaleMinK4(2*c+1, s)
			d1, min1, d2, min2 := float32(sc1), float32(m1), float32(sc2), float32(m2)
			for k := range sd {
				p := float32(float32(q[k]&0x0f) * lo[k])
				p += float32(float32(q[k+8]&0x0f) * lo[k+8])
				p += float32(float32(q[k+16]&0x0f) * lo[k+16])
				p += float32(float32(q[k+24]&0x0f) * lo[k+24])
				sd[k] += float32(d1 * p)
				sm[k] += float32(min1 * (((lo[k] + lo[k+8]) + lo[k+16]) + lo[k+24]))
			}
			for k := range sd {
				p := float32(float32(q[k]>>4) * hi[k])
				p += float32(float32(q[k+8]>>4) * hi[k+8])
				p += float32(float32(q[k+16]>>4) * hi[k+16])
				p += float32(float32(q[k+24]>>4) * hi[k+24])
				sd[k] += float32(d2 * p)
				sm[k] += float32(min2 * (((hi[k] + hi[k+8]) + hi[k+16]) + hi[k+24]))
			}
		}
		d, dmin := f16(blk), f16(blk[2:])
		for k := range acc {
			acc[k] += float32(d * sd[k])
			acc[k] -= float32(dmin * sm[k])
		}
	}
	return sum8(&acc)
}

// Q5_K: as Q4_K with 32 bytes qh of fifth bits before the nibbles: bit 2c
// of qh[l] belongs to element l of sub-block 2c, bit 2c+1 to sub-block 2c+1.

func dequantQ5_K(dst []float32, row []byte) {
	for b := 0; b*256 < len(dst); b++ {
		blk := row[b*176 : b*176+176]
		d, dmin := f16(blk), f16(blk[2:])
		s := (*[12]byte)(blk[4:])
		qh := (*[32]byte)(blk[16:])
		for c := range 4 {
			q := (*[32]byte)(blk[48+32*c:])
			sc1, m1 := scaleMinK4(2*c, s)
			sc2, m2 := scaleMinK4(2*c+1, s)
			d1, min1 := d*float32(sc1), float32(dmin*float32(m1))
			d2, min2 := d*float32(sc2), float32(dmin*float32(m2))
			lo := (*[32]float32)(dst[b*256+64*c:])
			hi := (*[32]float32)(dst[b*256+64*c+32:])
			for l := range 32 {
				h := qh[l] >> (2 * c)
				lo[l] = float32(d1*float32(q[l]&0x0f|(h&1)<<4)) - min1
				hi[l] = float32(d2*float32(q[l]>>4|(h&2)<<3)) - min2
			}
		}
	}
}

// dotQ5_K sums in the vector kernels' order (order.go), as dotQ4_K does.
func dotQ5_K(row []byte, x []float32) float32 {
	var acc [8]float32
	for b := 0; b*256 < len(x); b++ {
		blk := row[b*176 : b*176+176]
		s := (*[12]byte)(blk[4:])
		qh := (*[32]byte)(blk[16:])
		var sd, sm [8]float32
		for c := range 4 {
			q := (*[32]byte)(blk[48+32*c:])
			lo := (*[32]float32)(x[b*256+64*c:])
			hi := (*[32]float32)(x[b*256+64*c+32:])
			sc1, m1 := scaleMinK4(2*c, s)
			sc2, m2 := scaleMinK4(2*c+1, s)
			d1, min1, d2, min2 := float32(sc1), float32(m1), float32(sc2), float32(m2)
			shift := 2 * c
			for k := range sd {
				p := float32(float32(q[k]&0x0f|(qh[k]>>shift&1)<<4) * lo[k])
				p += float32(float32(q[k+8]&0x0f|(qh[k+8]>>shift&1)<<4) * lo[k+8])
				p += float32(float32(q[k+16]&0x0f|(qh[k+16]>>shift&1)<<4) * lo[k+16])
				p += float32(float32(q[k+24]&0x0f|(qh[k+24]>>shift&1)<<4) * lo[k+24])
				sd[k] += float32(d1 * p)
				sm[k] += float32(min1 * (((lo[k] + lo[k+8]) + lo[k+16]) + lo[k+24]))
			}
			shift++
			for k := range sd {
				p := float32(float32(q[k]>>4|(qh[k]>>shift&1)<<4) * hi[k])
				p += float32(float32(q[k+8]>>4|(qh[k+8]>>shift&1)<<4) * hi[k+8])
				p += float32(float32(q[k+16]>>4|(qh[k+16]>>shift&1)<<4) * hi[k+16])
				p += float32(float32(q[k+24]>>4|(qh[k+24]>>shift&1)<<4) * hi[k+24])
				sd[k] += float32(d2 * p)
				sm[k] += float32(min2 * (((hi[k] + hi[k+8]) + hi[k+16]) + hi[k+24]))
			}
		}
		d, dmin := f16(blk), f16(blk[2:])
		for k := range acc {
			acc[k] += float32(d * sd[k])
			acc[k] -= float32(dmin * sm[k])
		}
	}
	return sum8(&acc)
}

// Q6_K: super-block of 256 = 16 sub-blocks of 16. 128 bytes ql of low
// nibbles, 64 bytes qh of high 2-bit pairs, 16 int8 scales, fp16 d last. Each
// half of 128 elements uses 64 bytes of ql and 32 of qh: element l (0–31) of
// its four quarters takes ql[l] low, ql[l+32] low, ql[l] high, ql[l+32] high,
// with bits 0–1, 2–3, 4–5, 6–7 of qh[l]; x = (d·sc)·(q−32).

func dequantQ6_K(dst []float32, row []byte) {
	for b := 0; b*256 < len(dst); b++ {
		blk := row[b*210 : b*210+210]
		d := f16(blk[208:])
		for h := range 2 {
			ql := (*[64]byte)(blk[64*h:])
			qh := (*[32]byte)(blk[128+32*h:])
			sc := (*[8]byte)(blk[192+8*h:])
			out := (*[128]float32)(dst[b*256+128*h:])
			for l := range 32 {
				is := l / 16
				q1 := int32(ql[l]&0x0f|(qh[l]&3)<<4) - 32
				q2 := int32(ql[l+32]&0x0f|(qh[l]>>2&3)<<4) - 32
				q3 := int32(ql[l]>>4|(qh[l]>>4&3)<<4) - 32
				q4 := int32(ql[l+32]>>4|(qh[l]>>6&3)<<4) - 32
				out[l] = float32(d*float32(int8(sc[is]))) * float32(q1)
				out[l+32] = float32(d*float32(int8(sc[is+2]))) * float32(q2)
				out[l+64] = float32(d*float32(int8(sc[is+4]))) * float32(q3)
				out[l+96] = float32(d*float32(int8(sc[is+6]))) * float32(q4)
			}
		}
	}
}

// dotQ6_K sums in the vector kernels' order (order.go), by sub-blocks of
// 16: lane k adds the products of elements k and k+8, each sub-block's
// scale multiplies those into the block's lanes, and d into the row's.
// Sub-block j of a half is its quarter j/2's elements 16(j%2) to 16(j%2)+15.
func dotQ6_K(row []byte, x []float32) float32 {
	var acc [8]float32
	var s [8]float32
	for b := 0; b*256 < len(x); b++ {
		blk := row[b*210 : b*210+210]
		var sd [8]float32
		for h := range 2 {
			ql := (*[64]byte)(blk[64*h:])
			qh := (*[32]byte)(blk[128+32*h:])
			xs := (*[128]float32)(x[b*256+128*h:])
			for j, v := range (*[8]byte)(blk[192+8*h:]) {
				s[j] = float32(int8(v))
			}
			for k := range sd {
				a0, a1, a2, a3 := q6Quarters((*[41]byte)(ql[k:]), (*[9]byte)(qh[k:]), (*[105]float32)(xs[k:]))
				b0, b1, b2, b3 := q6Quarters((*[41]byte)(ql[k+16:]), (*[9]byte)(qh[k+16:]), (*[105]float32)(xs[k+16:]))
				v := sd[k]
				v += float32(s[0] * a0)
				v += float32(s[1] * b0)
				v += float32(s[2] * a1)
				v += float32(s[3] * b1)
				v += float32(s[4] * a2)
				v += float32(s[5] * b2)
				v += float32(s[6] * a3)
				v += float32(s[7] * b3)
				sd[k] = v
			}
		}
		d := f16(blk[208:])
		for k := range acc {
			acc[k] += float32(d * sd[k])
		}
	}
	return sum8(&acc)
}

// q6Quarters returns, for element l (< 24) of each quarter of a Q6_K half,
// the sum of the products of elements l and l+8: ql, qh and xs are the
// half's low nibbles, high bits and x from element l on.
func q6Quarters(ql *[41]byte, qh *[9]byte, xs *[105]float32) (p0, p1, p2, p3 float32) {
	p0 = float32(q6(ql[0]&0x0f|(qh[0]&3)<<4)*xs[0]) + float32(q6(ql[8]&0x0f|(qh[8]&3)<<4)*xs[8])
	p1 = float32(q6(ql[32]&0x0f|(qh[0]>>2&3)<<4)*xs[32]) + float32(q6(ql[40]&0x0f|(qh[8]>>2&3)<<4)*xs[40])
	p2 = float32(q6(ql[0]>>4|(qh[0]>>4&3)<<4)*xs[64]) + float32(q6(ql[8]>>4|(qh[8]>>4&3)<<4)*xs[72])
	p3 = float32(q6(ql[32]>>4|(qh[0]>>6)<<4)*xs[96]) + float32(q6(ql[40]>>4|(qh[8]>>6)<<4)*xs[104])
	return p0, p1, p2, p3
}

// q6 is the value of a 6-bit Q6_K code.
func q6(c byte) float32 { return float32(int32(c) - 32) }

// Q4_1: fp16 d, fp16 m, 16 bytes of nibbles as Q4_0; x = q·d + m.

func dequantQ4_1(dst []float32, row []byte) {
	for b := 0; b*32 < len(dst); b++ {
		blk := row[b*20 : b*20+20]
		d, m := f16(blk), f16(blk[2:])
		q := (*[16]byte)(blk[4:])
		out := (*[32]float32)(dst[b*32:])
		for j := range 16 {
			out[j] = float32(float32(q[j]&0x0f)*d) + m
			out[j+16] = float32(float32(q[j]>>4)*d) + m
		}
	}
}

// dotQ4_1 sums in the vector kernels' order (order.go).
func dotQ4_1(row []byte, x []float32) float32 {
	var acc [8]float32
	for b := 0; b*32 < len(x); b++ {
		blk := row[b*20 : b*20+20]
		d, m := f16(blk), f16(blk[2:])
		q := (*[16]byte)(blk[4:])
		xs := (*[32]float32)(x[b*32:])
		for k := range acc {
			p := float32(float32(q[k]&0x0f) * xs[k])
			p += float32(float32(q[k+8]&0x0f) * xs[k+8])
			p += float32(float32(q[k]>>4) * xs[k+16])
			p += float32(float32(q[k+8]>>4) * xs[k+24])
			acc[k] += float32(d * p)
			acc[k] += float32(m * (((xs[k] + xs[k+8]) + xs[k+16]) + xs[k+24]))
		}
	}
	return sum8(&acc)
}

// Q2_K: super-block of 256 = 16 sub-blocks of 16. 16 bytes of scales (low
// nibble scale, high nibble min), 64 bytes of 2-bit codes, fp16 d, fp16 dmin.
// Each half of 128 elements uses 32 code bytes: its sub-block pair j (0–3)
// takes bits 2j–2j+1 of bytes 0–15 and 16–31; x = (d·sc)·q − dmin·m.

func dequantQ2_K(dst []float32, row []byte) {
	for b := 0; b*256 < len(dst); b++ {
		blk := row[b*84 : b*84+84]
		d, dmin := f16(blk[80:]), f16(blk[82:])
		sc := (*[16]byte)(blk)
		for h := range 2 {
			q := (*[32]byte)(blk[16+32*h:])
			for j := range 4 {
				shift := 2 * j
				for k := range 2 {
					s := sc[8*h+2*j+k]
					dl, ml := d*float32(s&0x0f), float32(dmin*float32(s>>4))
					out := (*[16]float32)(dst[b*256+128*h+32*j+16*k:])
					for l := range 16 {
						out[l] = float32(dl*float32(q[16*k+l]>>shift&3)) - ml
					}
				}
			}
		}
	}
}

// dotQ2_K sums in the vector kernels' order (order.go), by sub-blocks of
// 16 as dotQ6_K does, with the sums of x for the mins as dotQ4_K does.
func dotQ2_K(row []byte, x []float32) float32 {
	var acc [8]float32
	for b := 0; b*256 < len(x); b++ {
		blk := row[b*84 : b*84+84]
		sc := (*[16]byte)(blk)
		var sd, sm [8]float32
		for h := range 2 {
			q := (*[32]byte)(blk[16+32*h:])
			for j := range 4 {
				shift := 2 * j
				for k := range 2 {
					s := sc[8*h+2*j+k]
					f, m := float32(s&0x0f), float32(s>>4)
					qq := (*[16]byte)(q[16*k:])
					xs := (*[16]float32)(x[b*256+128*h+32*j+16*k:])
					for l := range sd {
						p := float32(float32(qq[l]>>shift&3)*xs[l]) + float32(float32(qq[l+8]>>shift&3)*xs[l+8])
						sd[l] += float32(f * p)
						sm[l] += float32(m * (xs[l] + xs[l+8]))
					}
				}
			}
		}
		d, dmin := f16(blk[80:]), f16(blk[82:])
		for k := range acc {
			acc[k] += float32(d * sd[k])
			acc[k] -= float32(dmin * sm[k])
		}
	}
	return sum8(&acc)
}

// q3KScale returns the signed 6-bit scale of sub-block j (0–15) of a Q3_K
// block: its low 4 bits are the low nibble of byte j (j < 8) or the high
// nibble of byte j−8, its high 2 bits are bits 2⌊j/4⌋… of byte 8+j mod 4;
// the value is stored offset by 32.
func q3KScale(s *[12]byte, j int) int32 {
	var lo byte
	if j < 8 {
		lo = s[j] & 0x0f
	} else {
		lo = s[j-8] >> 4
	}
	hi := s[8+j%4] >> (2 * (j / 4)) & 3
	return int32(lo|hi<<4) - 32
}

// Q3_K: super-block of 256 = 16 sub-blocks of 16. 32 bytes hmask (bit i of
// hmask[l] is the high bit of element l or l+16 of the sub-block pair i), 64
// bytes of 2-bit codes laid out as Q2_K's, 12 bytes of packed 6-bit scales,
// fp16 d; x = (d·(sc−32))·(q − 4 if the high bit is clear).

func dequantQ3_K(dst []float32, row []byte) {
	for b := 0; b*256 < len(dst); b++ {
		blk := row[b*110 : b*110+110]
		d := f16(blk[108:])
		hm := (*[32]byte)(blk)
		s := (*[12]byte)(blk[96:])
		for h := range 2 {
			q := (*[32]byte)(blk[32+32*h:])
			for j := range 4 {
				shift, bit := 2*j, 4*h+j
				for k := range 2 {
					dl := d * float32(q3KScale(s, 8*h+2*j+k))
					out := (*[16]float32)(dst[b*256+128*h+32*j+16*k:])
					for l := range 16 {
						v := int32(q[16*k+l] >> shift & 3)
						if hm[16*k+l]>>bit&1 == 0 {
							v -= 4
						}
						out[l] = dl * float32(v)
					}
				}
			}
		}
	}
}

// dotQ3_K sums in the vector kernels' order (order.go), by sub-blocks of
// 16 as dotQ6_K does.
func dotQ3_K(row []byte, x []float32) float32 {
	var acc [8]float32
	for b := 0; b*256 < len(x); b++ {
		blk := row[b*110 : b*110+110]
		hm := (*[32]byte)(blk)
		s := (*[12]byte)(blk[96:])
		var sd [8]float32
		for h := range 2 {
			q := (*[32]byte)(blk[32+32*h:])
			for j := range 4 {
				shift, bit := 2*j, 4*h+j
				for k := range 2 {
					f := float32(q3KScale(s, 8*h+2*j+k))
					qq := (*[16]byte)(q[16*k:])
					hh := (*[16]byte)(hm[16*k:])
					xs := (*[16]float32)(x[b*256+128*h+32*j+16*k:])
					for l := range sd {
						p := float32(float32(int32(qq[l]>>shift&3|(hh[l]>>bit&1)<<2)-4)*xs[l]) +
							float32(float32(int32(qq[l+8]>>shift&3|(hh[l+8]>>bit&1)<<2)-4)*xs[l+8])
						sd[l] += float32(f * p)
					}
				}
			}
		}
		d := f16(blk[108:])
		for k := range acc {
			acc[k] += float32(d * sd[k])
		}
	}
	return sum8(&acc)
}

// dotRowsGo sets y[r] to f.dot of x with row r of the len(y) rows in w.
func dotRowsGo(f *format, y []float32, w []byte, x []float32) {
	rowBytes := len(x) / f.blockElems * f.blockBytes
	for r := range y {
		y[r] = f.dot(w[r*rowBytes:(r+1)*rowBytes], x)
	}
}
