package ggml

// The fused dot kernels' summation order. A row·x product sums in float32
// in one fixed order that the Go code below and every vector kernel follow,
// so that all of them give the same bits (the order is golora's, not
// ggml's: ggml's own dot products quantize x first).
//
// A 32-element group of codes c (a Q8_0 or Q4_0 block) goes to 8 lanes:
// lane k takes the products c[j]·x[j] of the group's elements j = k, k+8,
// k+16 and k+24, each rounded, and adds them in that order; the group's
// scale d then enters each lane as acc[k] += d·p[k], again a rounded
// product and a sum. At the end of the row the 8 lanes are folded in halves
// (sum8). Products and sums are rounded separately rather than fused
// (VFMADD231PS) so that the Go code, which every CPU runs, stays plain
// float32 arithmetic; the conversions below stop a compiler from fusing
// them.

// dotLanes adds to the lanes the products of a group's codes with x times
// the group's scale d, in the kernels' order.
func dotLanes(acc *[8]float32, d float32, c, x *[32]float32) {
	for k := range acc {
		p := float32(c[k] * x[k])
		p += float32(c[k+8] * x[k+8])
		p += float32(c[k+16] * x[k+16])
		p += float32(c[k+24] * x[k+24])
		acc[k] += float32(d * p)
	}
}

// sum8 folds the 8 lanes in halves, as the vector kernels' horizontal sum
// does: lane k += lane k+4, then k += k+2, then 0 += 1.
func sum8(a *[8]float32) float32 {
	b0, b1, b2, b3 := a[0]+a[4], a[1]+a[5], a[2]+a[6], a[3]+a[7]
	return (b0 + b2) + (b1 + b3)
}
