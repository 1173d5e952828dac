package model

import (
	"context"
	"fmt"
	"math"
	"reflect"
	"testing"

	"github.com/golora/golora/internal/gguf"
	"github.com/golora/golora/nf4"
	"github.com/golora/golora/quant/ggml"
	"github.com/stretchr/testify/require"
)

// TestLoadGGUFFusedSplitMatches: the linears split from a Phi-3 file's fused
// attn_qkv (q, k, v) and ffn_up (gate, up) tensors, each part converted from
// its own rows of the file, are bit for bit those of converting the whole
// fused tensor to float32 and then cutting it (how they were loaded before):
// dense from F16, NF4 from F16 and from Q8_0 quantized again; Q8_0 kept as it
// is dequantizes to the whole tensor's rows.
//
// The split holds no float32 copy of the whole fused tensor: each part is
// decoded into its own linear's buffer (dense) or the quantizer's, a part at
// a time. For Phi-3-mini (dim 3072, hidden 8192) that saves the
// 2·8192·3072·4 B = 201 MB gate_up copy (qkv: 3·3072·3072·4 B = 113 MB); the
// largest float32 buffer while loading with a quantizer is then the worker's,
// one part (8192·3072·4 B = 101 MB), as for any other linear.
func TestLoadGGUFFusedSplitMatches(t *testing.T) {
	q := nf4.Quantizer(nf4.Options{})
	for typName, typ := range map[string]ggml.Type{"F16": GGUFF16, "Q8_0": ggml.Q8_0} {
		path := phi3GGUF(t, typ)
		for name, so := range map[string]streamOptions{
			"dense":          {},
			"nf4":            {quantizer: q},
			"nf4 requantize": {quantizer: q, requantize: true},
		} {
			t.Run(typName+" "+name, func(t *testing.T) {
				m, err := loadGGUFStream(context.Background(), path, so)
				require.NoError(t, err)
				f, err := gguf.Open(path)
				require.NoError(t, err)
				defer f.Close()
				for l, layer := range m.weights.Layers {
					for _, fz := range []struct {
						name  string
						parts []*Linear
					}{{"attn_qkv", []*Linear{layer.Q, layer.K, layer.V}}, {"ffn_up", []*Linear{layer.Gate, layer.Up}}} {
						tn := fmt.Sprintf("blk.%d.%s.weight", l, fz.name)
						ti, ok := f.Tensor(tn)
						require.True(t, ok, tn)
						raw, err := f.TensorBytes(tn)
						require.NoError(t, err)
						full := make([]float32, ti.NumElements())
						_, err = ggufFloat32s(ti, raw, f, full)
						require.NoError(t, err)
						r0 := 0
						for _, lin := range fz.parts {
							want := full[r0*lin.In : (r0+lin.Out)*lin.In]
							r0 += lin.Out
							switch {
							case so.quantizer == nil && typ == GGUFF16:
								require.Nil(t, lin.Quantized, lin.Name)
								require.Len(t, lin.Dense, len(want), lin.Name)
								for i := range want {
									if math.Float32bits(lin.Dense[i]) != math.Float32bits(want[i]) {
										t.Fatalf("%s element %d is %v, want %v", lin.Name, i, lin.Dense[i], want[i])
									}
								}
							case so.quantizer == nil || !so.requantize && typ != GGUFF16:
								g, ok := lin.Quantized.(*ggml.Matrix)
								require.True(t, ok, "%s is %T, want a ggml matrix", lin.Name, lin.Quantized)
								require.Equal(t, typ, g.Type(), lin.Name)
								got := make([]float32, len(want))
								require.NoError(t, g.DequantizeRows(got, 0, lin.Out))
								require.Equal(t, want, got, lin.Name)
							default:
								wq, err := q(append([]float32(nil), want...), lin.Out, lin.In)
								require.NoError(t, err)
								if !reflect.DeepEqual(wq, lin.Quantized) {
									t.Errorf("%s: NF4 of the split part differs from NF4 of the whole tensor's rows", lin.Name)
								}
							}
						}
					}
				}
			})
		}
	}
}
