package model

import (
	"context"
	"encoding/binary"
	"os"
	"testing"

	"github.com/golora/golora/internal/gguf"
	"github.com/golora/golora/nf4"
	"github.com/stretchr/testify/require"
)

// TestLoadGGUFPrefaultedMatches: with a quantizer, reading the embedding
// and an untied head last, into memory populated ahead (as a real model's
// are), gives the same weights as reading them first, for a tied and an
// untied stories260K.
func TestLoadGGUFPrefaultedMatches(t *testing.T) {
	tied, err := os.ReadFile(stories260KGGUFPath)
	require.NoError(t, err)
	untied := rebuildGGUF(t, tied, editTensor("output.weight", func(ti gguf.TensorInfo, raw []byte) (gguf.GGMLType, []uint64, []byte, bool) {
		raw = append([]byte(nil), raw...)
		binary.LittleEndian.PutUint32(raw[4:], 0x3f800000) // element 1 := 1.0
		return ti.Type, ti.Dims, raw, true
	}))
	q := nf4.Quantizer(nf4.Options{})
	for name, data := range map[string][]byte{"tied": tied, "untied": untied} {
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
			require.Equal(t, name == "tied", last.Config.TiedOutput)
			if name == "tied" {
				require.True(t, &last.Output.Dense[0] == &last.Embedding[0], "the tied head does not alias the embedding")
			}
			require.NoError(t, last.Validate())
			hfAssertSameNF4(t, last, first)
			require.Equal(t, first.Embedding, last.Embedding)
			require.Equal(t, first.Output.Dense, last.Output.Dense)
		})
	}
}
