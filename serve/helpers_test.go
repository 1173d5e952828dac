package serve

import (
	"context"
	"fmt"
	"path/filepath"
	"sync/atomic"
	"testing"

	"github.com/golora/golora/lora"
	"github.com/golora/golora/model"
)

// embedded returns a fresh copy of the embedded stories260K model.
func embedded(t testing.TB) *model.Base {
	t.Helper()
	ck, err := model.Default()
	if err != nil {
		t.Fatal(err)
	}
	return ck
}

// newAdapter returns an all-linear rank-r adapter for base whose A and B are
// both random (PyTorch's default init), so it changes the output.
func newAdapter(t testing.TB, base *model.Weights, r int, seed uint64) *lora.Adapter {
	t.Helper()
	cfg := lora.DefaultConfig()
	cfg.R, cfg.Alpha = r, float64(2*r)
	cfg.TargetModules = lora.ModuleRegex(lora.AllLinear)
	cfg.InitLoRAWeights = lora.InitLinearDefault
	a, err := lora.New(base, cfg, seed)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// writeAdapters saves n adapters named a0, a1, … under dir.
func writeAdapters(t testing.TB, base *model.Weights, dir string, n, r int) []string {
	t.Helper()
	names := make([]string, n)
	for i := range n {
		names[i] = fmt.Sprintf("a%d", i)
		if err := lora.Save(filepath.Join(dir, names[i]), newAdapter(t, base, r, uint64(i+1))); err != nil {
			t.Fatal(err)
		}
	}
	return names
}

// countingSource counts the loads of a Source.
type countingSource struct {
	Source
	loads atomic.Int64
}

func (c *countingSource) Load(ctx context.Context, name string) (*lora.Adapter, error) {
	c.loads.Add(1)
	return c.Source.Load(ctx, name)
}
