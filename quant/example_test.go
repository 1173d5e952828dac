package quant_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"

	"github.com/golora/golora/nf4"
	"github.com/golora/golora/quant"
)

// Compare the 4-bit formats and INT8 on a small Gaussian weight: NF4 has the
// lowest error of the 4-bit formats, and with double quantization also the
// smallest storage.
func Example() {
	const rows, cols = 64, 256
	r := rand.New(rand.NewPCG(1, 0))
	w := make([]float32, rows*cols)
	for i := range w {
		w[i] = float32(r.NormFloat64() * 0.02)
	}

	nf4Default := quant.Named{Name: "nf4", Quantize: nf4.Quantizer(nf4.Options{})} // block 64, double quantization
	table, err := quant.Compare(context.Background(), w, rows, cols, []quant.Named{
		nf4Default,
		quant.Named{Name: "fp4", Quantize: quant.FP4Quantizer(64)},
		quant.Named{Name: "int4", Quantize: quant.Int4Quantizer(64)},
		quant.Named{Name: "int8", Quantize: quant.Int8Quantizer(64)},
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	if err := quant.WriteTable(os.Stdout, table); err != nil {
		fmt.Println(err)
	}
	// Output:
	// format  bits/param  MSE        max |err|  SQNR (dB)
	// nf4     4.129       3.386e-06  9.529e-03  20.72
	// fp4     4.500       6.043e-06  1.076e-02  18.21
	// int4    4.500       4.028e-06  4.910e-03  19.97
	// int8    8.500       1.405e-08  3.023e-04  44.54
}
