package model

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/golora/golora/internal/safetensors"
	"github.com/golora/golora/nf4"
)

// BenchmarkLoadNF4 loads a BF16 Hugging Face checkpoint (random weights,
// dim 512, 4 layers, FFN 1536, vocab 8192: 29 MB) with NF4 linears, side by
// side: "stream" quantizes each linear as it is read (LoadOptions.Quantizer),
// "after" loads float32 and then calls Weights.Quantize. It reports GB/s of
// checkpoint and the bytes allocated per load.
func BenchmarkLoadNF4(b *testing.B) {
	cfg := Config{Dim: 512, HiddenDim: 1536, Layers: 4, Heads: 8, KVHeads: 4, HeadDim: 64, VocabSize: 8192,
		MaxSeqLen: 1024, NormEps: 1e-5, RopeTheta: 10000, TiedOutput: true}
	dir := b.TempDir()
	if err := WriteHF(dir, hfRandomWeights(cfg, 1, nil), safetensors.BF16); err != nil {
		b.Fatal(err)
	}
	st, err := os.Stat(filepath.Join(dir, hfWeightsFile))
	if err != nil {
		b.Fatal(err)
	}
	q := nf4.Quantizer(nf4.Options{})
	ctx := context.Background()
	report := func(b *testing.B) {
		b.ReportMetric(float64(st.Size())*float64(b.N)/b.Elapsed().Seconds()/1e9, "GB/s")
	}
	b.Run("stream", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := loadHFStream(ctx, dir, streamOptions{quantizer: q}); err != nil {
				b.Fatal(err)
			}
		}
		report(b)
	})
	b.Run("after", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			w, err := loadHF(dir)
			if err != nil {
				b.Fatal(err)
			}
			if err := w.Quantize(ctx, q); err != nil {
				b.Fatal(err)
			}
		}
		report(b)
	})
}
