package ggml

// The fused dot kernels' summation order. The dot product of a row of W
// with x sums in float32 in one fixed order that the Go code and every
// vector kernel of a format follow, so that all of them give the same bits
// (the order is golora's, not ggml's: ggml's own dot products quantize x
// first). Every product is rounded and then added, never fused into one
// rounding (VFMADD231PS), so that the Go code, which every other CPU runs,
// stays plain float32 arithmetic; the conversions in it stop a compiler
// from fusing them.
//
// The row is summed in 8 lanes. A group of 32 elements with codes c (a
// Q8_0, Q4_0, Q4_1, Q5_0 or Q5_1 block, a Q4_K or Q5_K sub-block) gives
// lane k the products c[j]·x[j] of its elements j = k, k+8, k+16 and k+24,
// added in that order into p[k], and s[k] = ((x[k]+x[k+8])+x[k+16])+x[k+24];
// a Q2_K, Q3_K or Q6_K sub-block of 16 the products of its elements k and
// k+8, and s[k] = x[k]+x[k+8]. Scales enter lane by lane:
//
//   - Q8_0, Q4_0 and Q5_0 add d·p[k] to the row's lane k;
//   - Q4_1 and Q5_1 add d·p[k], then m·s[k];
//   - Q2_K, Q4_K and Q5_K sum sc·p[k] and m·s[k] over their sub-blocks into
//     two block lanes, then add d times the first to the row's lane and
//     subtract dmin times the second;
//   - Q3_K and Q6_K sum sc·p[k] over their sub-blocks and add d times that.
//
// At the end of the row the 8 lanes are folded in halves (sum8), as a
// vector kernel's horizontal sum adds them.

// sum8 folds the 8 lanes in halves, as the vector kernels' horizontal sum
// does: lane k += lane k+4, then k += k+2, then 0 += 1.
func sum8(a *[8]float32) float32 {
	b0, b1, b2, b3 := a[0]+a[4], a[1]+a[5], a[2]+a[6], a[3]+a[7]
	return (b0 + b2) + (b1 + b3)
}
