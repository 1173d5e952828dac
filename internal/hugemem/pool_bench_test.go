package hugemem

import "testing"

// BenchmarkPoolCycle: an adapter-sized arena (1 MiB) taken, filled and
// freed again and again from a pool in which it is the only arena, as a
// cache that loads and drops one adapter does.
func BenchmarkPoolCycle(b *testing.B) {
	p, err := NewPool(32<<20, 64<<20)
	if err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		a, err := p.NewArena(1 << 20)
		if err != nil {
			b.Fatal(err)
		}
		v := Alloc[uint64](a, (1<<20)/8)
		for i := range v {
			v[i] = uint64(i)
		}
		a.Free()
	}
}
