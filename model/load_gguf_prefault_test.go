package model

import (
	"context"
	"encoding/binary"
	"os"
	"path/filepath"
	"testing"

	"github.com/golora/golora/internal/gguf"
	"github.com/golora/golora/nf4"
	"github.com/stretchr/testify/require"
)

// TestLoadGGUFPrefaultedMatches: with a quantizer, reading the embedding
// and an untied head last, into memory populated ahead (as a real model's
// are), gives the same weights as reading them first, for a tied and an
// untied float32 stories260K and a tied F16 one (kept 16-bit).
func TestLoadGGUFPrefaultedMatches(t *testing.T) {
	tied, err := os.ReadFile(stories260KGGUFPath)
	require.NoError(t, err)
	untied := rebuildGGUF(t, tied, editTensor("output.weight", func(ti gguf.TensorInfo, raw []byte) (gguf.GGMLType, []uint64, []byte, bool) {
		raw = append([]byte(nil), raw...)
		binary.LittleEndian.PutUint32(raw[4:], 0x3f800000) // element 1 := 1.0
		return ti.Type, ti.Dims, raw, true
	}))
	b, err := Default()
	require.NoError(t, err)
	path := filepath.Join(t.TempDir(), "f16.gguf")
	require.NoError(t, WriteGGUF(path, b, GGUFF16))
	tied16, err := os.ReadFile(path) // a tied F16 embedding, kept 16-bit (keepGGUF16)
	require.NoError(t, err)
	q := nf4.Quantizer(nf4.Options{})
	for name, data := range map[string][]byte{"tied": tied, "untied": untied, "tied F16": tied16} {
		t.Run(name, func(t *testing.T) {
			load := func(so streamOptions) *Weights {
				f, err := gguf.Parse(data)
				require.NoError(t, err)
				m, err := fromGGUF(context.Background(), f, so)
				require.NoError(t, err)
				return m.weights
			}
			first := load(streamOptions{quantizer: q})
			last := load(streamOptions{quantizer: q, prefaultMin: 1})
			require.Equal(t, name != "untied", last.Config.TiedOutput)
			switch name {
			case "tied":
				require.True(t, &last.Output.Dense[0] == &last.Embedding[0], "the tied head does not alias the embedding")
			case "tied F16":
				require.NotNil(t, last.EmbeddingMatrix)
				require.True(t, last.Output.Quantized == last.EmbeddingMatrix, "the tied 16-bit head is not the embedding")
			}
			require.NoError(t, last.Validate())
			require.Equal(t, first.Embedding, last.Embedding)
			require.Equal(t, first.EmbeddingMatrix, last.EmbeddingMatrix)
			require.Equal(t, first.Output.Dense, last.Output.Dense)
			// The helper compares with a float32 head and embedding.
			hfAssertSameNF4(t, last, load(streamOptions{quantizer: q, float32Embedding: true}))
		})
	}
}
