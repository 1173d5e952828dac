package infer

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/golora/golora/model"
)

// TestWritePeerModels writes BenchmarkGenerateDecode's random models (the
// stories15M and stories110M shapes, the same seeds) as float32 GGUF files
// with the TinyLlama tokenizer of model/tokenizer/testdata (32,000 tokens),
// for llama.cpp to decode in the comparison of testdata/peers/README.md.
// It is a generator, run by hand: without GOLORA_PEER_MODELS set to the
// output directory it is skipped. It checks that each file reads back as
// the weights it was written from.
func TestWritePeerModels(t *testing.T) {
	out := os.Getenv("GOLORA_PEER_MODELS")
	if out == "" {
		t.Skip("set GOLORA_PEER_MODELS=DIR to write the decode benchmarks' models there")
	}
	tokenizerDir := filepath.Join("..", "tokenizer", "testdata", "tinyllama")
	for _, m := range []struct {
		name string
		cfg  model.Config
		seed uint64
	}{
		{"stories15M", stories15MConfig, 15},
		{"stories110M", stories110MConfig, 110},
	} {
		w := model.RandomWeights(m.cfg, m.seed)
		dir := t.TempDir()
		if err := model.WriteHF(dir, w, model.F32); err != nil {
			t.Fatal(err)
		}
		for _, file := range []string{"tokenizer.json", "tokenizer_config.json"} {
			data, err := os.ReadFile(filepath.Join(tokenizerDir, file))
			if err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(dir, file), data, 0o644); err != nil {
				t.Fatal(err)
			}
		}
		hf, err := model.Load(context.Background(), dir, model.LoadOptions{})
		if err != nil {
			t.Fatal(err)
		}
		path := filepath.Join(out, m.name+".f32.gguf")
		if err := model.WriteGGUF(path, hf, model.GGUFF32); err != nil {
			t.Fatal(err)
		}
		back, err := model.Load(context.Background(), path, model.LoadOptions{WeightsOnly: true})
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(back.Weights.Embedding, w.Embedding) {
			t.Fatalf("%s: the embedding read back differs from the one written", path)
		}
		for l := range w.Layers {
			got := back.Weights.Layers[l].Linears()
			for i, want := range w.Layers[l].Linears() {
				if !slices.Equal((*got[i].Linear).Dense, (*want.Linear).Dense) {
					t.Fatalf("%s: layer %d %s read back differs from the one written", path, l, want.Module)
				}
			}
		}
		t.Logf("wrote %s", path)
	}
}
