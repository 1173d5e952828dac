package lora

import (
	"context"
	"testing"

	"github.com/golora/golora/internal/safetensors"
	"github.com/golora/golora/internal/testmodel"
	"github.com/golora/golora/model"
	"github.com/golora/golora/nf4"
)

// TestQLoRAExportRoundTrip folds an adapter into an NF4-quantized base with
// MergedDense, writes the result as a Hugging Face checkpoint and reads it
// back: every weight must come back bit for bit, and every merged linear must
// equal the dequantized NF4 weight with the adapter merged in.
func TestQLoRAExportRoundTrip(t *testing.T) {
	base := testBase(t, tinyConfig(), 1, nil)
	err := base.Quantize(context.Background(), nf4.Quantizer(nf4.Options{BlockSize: 32}))
	if err != nil {
		t.Fatal(err)
	}
	a := mustNew(t, base, allLinearConfig(), 3)
	randomize(a, 4)
	merged, err := MergedDense(base, a)
	if err != nil {
		t.Fatal(err)
	}

	dequantized := testBase(t, tinyConfig(), 1, nil)
	for i, lin := range base.Linears() {
		dst := dequantized.Linears()[i]
		if err := lin.Quantized.DequantizeRows(dst.Dense, 0, lin.Out); err != nil {
			t.Fatal(err)
		}
	}
	if err := Merge(dequantized, a); err != nil {
		t.Fatal(err)
	}
	for i, lin := range merged.Linears() {
		if !testmodel.SameBits(lin.Dense, dequantized.Linears()[i].Dense) {
			t.Errorf("%s: MergedDense differs from dequantize + Merge", lin.Name)
		}
	}

	dir := t.TempDir()
	if err := model.WriteHF(dir, merged, safetensors.F32); err != nil {
		t.Fatal(err)
	}
	loaded, err := model.Load(context.Background(), dir, model.LoadOptions{WeightsOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	back := loaded.Weights
	if back.Config != merged.Config {
		t.Errorf("config %+v, want %+v", back.Config, merged.Config)
	}
	for i, lin := range merged.Linears() {
		got := back.Linears()[i]
		if got.Name != lin.Name || !testmodel.SameBits(got.Dense, lin.Dense) {
			t.Errorf("%s: exported weight differs after Load", lin.Name)
		}
	}
	if !testmodel.SameBits(back.Embedding, merged.Embedding) || !testmodel.SameBits(back.Output.Dense, merged.Output.Dense) || !testmodel.SameBits(back.Norm, merged.Norm) {
		t.Error("embedding, head or final norm differs after Load")
	}
}
