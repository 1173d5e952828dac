package serve

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/golora/golora/lora"
)

// TestAdapterAddDeltaMatchesLoRA compares the serving form of adapters of
// ranks 1, 3, 8 and 16, in float32 and half precision, with lora.Adapter's
// own AddDelta (the reference, row by row in Go) at every linear layer of
// the embedded model, for groups of 1 and 5 rows: float32 within float32
// rounding, half precision within the error of 11-bit matrices.
func TestAdapterAddDeltaMatchesLoRA(t *testing.T) {
	base := embedded(t).Weights
	rng := rand.New(rand.NewPCG(3, 3))
	for _, r := range []int{1, 3, 8, 16} {
		la := newAdapter(t, base, r, uint64(r))
		for _, prec := range []Precision{Float32, Float16} {
			store := NewStore(mapSource{"x": la}, base, StoreOptions{Precision: prec})
			h, err := store.Acquire(context.Background(), "x")
			if err != nil {
				t.Fatal(err)
			}
			tol := 1e-5
			if prec == Float16 {
				tol = 1e-2 // 11 significant bits per element; sums of a few hundred products with cancellation
			}
			for _, lin := range append(base.Linears(), base.Output) {
				for _, n := range []int{1, 5} {
					x := make([]float32, n*lin.In)
					for i := range x {
						x[i] = float32(rng.NormFloat64())
					}
					got, want := make([]float32, n*lin.Out), make([]float32, n*lin.Out)
					if err := h.Adapter().AddDelta(lin, got, x, n); err != nil {
						t.Fatal(err)
					}
					if err := la.AddDelta(lin, want, x, n); err != nil {
						t.Fatal(err)
					}
					var scale float64
					for _, v := range want {
						scale = max(scale, math.Abs(float64(v)))
					}
					for i := range got {
						if d := math.Abs(float64(got[i] - want[i])); d > tol*max(scale, 1e-3) {
							t.Fatalf("rank %d %s %s, %d rows: [%d] = %g, lora gives %g (scale %g)", r, prec, lin.Name, n, i, got[i], want[i], scale)
						}
					}
				}
			}
			h.Release()
		}
	}
}

// mapSource serves adapters from a map.
type mapSource map[string]*lora.Adapter

func (m mapSource) Load(_ context.Context, name string) (*lora.Adapter, error) {
	if a, ok := m[name]; ok {
		return a, nil
	}
	return nil, ErrUnknownAdapter
}

func (m mapSource) Names(context.Context) ([]string, error) {
	var names []string
	for n := range m {
		names = append(names, n)
	}
	return names, nil
}

// TestParsePrecision: ParsePrecision inverts String and refuses other names.
func TestParsePrecision(t *testing.T) {
	for _, p := range []Precision{Float32, Float16} {
		got, err := ParsePrecision(p.String())
		if err != nil || got != p {
			t.Errorf("ParsePrecision(%q) = %v, %v; want %v", p.String(), got, err, p)
		}
	}
	if _, err := ParsePrecision("bf16"); err == nil {
		t.Error("ParsePrecision(\"bf16\"): no error")
	}
}

// TestHalfPrecisionRange: a store in half precision refuses an adapter with
// a value binary16 cannot hold, naming the matrix and element, loads the
// largest binary16 (65504) and the others, and a float32 store loads all.
func TestHalfPrecisionRange(t *testing.T) {
	base := embedded(t).Weights
	set := func(seed uint64, change func(p *lora.Pair)) *lora.Adapter {
		a := newAdapter(t, base, 4, seed)
		p, ok := a.Pair(a.Modules()[1])
		if !ok {
			t.Fatal("no pair")
		}
		change(p)
		return a
	}
	module := newAdapter(t, base, 4, 1).Modules()[1]
	src := mapSource{
		"bigA": set(1, func(p *lora.Pair) { p.A[1*p.In+2] = 1e5 }),
		"bigB": set(2, func(p *lora.Pair) { p.B[3*p.R+1] = -7e4 }),
		"edge": set(3, func(p *lora.Pair) { p.A[0], p.B[0] = 65504, -65504 }),
		"ok":   newAdapter(t, base, 4, 4),
	}
	half := NewStore(src, base, StoreOptions{Precision: Float16})
	for name, want := range map[string]string{
		"bigA": fmt.Sprintf("%s.lora_A[1, 2] = 100000 is beyond half precision's range", module),
		"bigB": fmt.Sprintf("%s.lora_B[3, 1] = -70000 is beyond half precision's range", module),
	} {
		h, err := half.Acquire(context.Background(), name)
		if err == nil {
			h.Release()
			t.Fatalf("%s in f16: no error", name)
		}
		if !strings.Contains(err.Error(), want) || !strings.Contains(err.Error(), name) {
			t.Errorf("%s in f16: %v; want it to name %q", name, err, want)
		}
	}
	for _, name := range []string{"edge", "ok", "bigA"} {
		store := half
		if name == "bigA" {
			store = NewStore(src, base, StoreOptions{Precision: Float32})
		}
		h, err := store.Acquire(context.Background(), name)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		h.Release()
	}
}
