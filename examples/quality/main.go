// Command quality prints how closely each quantized format reproduces a
// Gaussian weight matrix drawn from N(0, σ²): bits per parameter, MSE, largest
// error and SQNR, one row per format.
//
// Usage:
//
//	go run ./examples/quality [-rows 4096] [-cols 4096] [-std 0.02] [-seed 1] [-block 64]
//
// "nf4" is QLoRA's setting (double quantization of the absmax), "nf4-nodq"
// keeps the absmax in float32; -block sets the block size of every format.
package main

import (
	"context"
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"os/signal"

	"github.com/golora/golora/nf4"
	"github.com/golora/golora/quant"
)

func main() {
	rows := flag.Int("rows", 4096, "rows of the weight matrix")
	cols := flag.Int("cols", 4096, "columns of the weight matrix")
	std := flag.Float64("std", 0.02, "standard deviation of the Gaussian weights")
	seed := flag.Uint64("seed", 1, "seed of the PCG generator drawing the weights")
	block := flag.Int("block", 64, "block size of every format (a power of two from 32 to 4096)")
	flag.Parse()

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	if err := run(ctx, *rows, *cols, *std, *seed, *block); err != nil {
		fmt.Fprintln(os.Stderr, "quality:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, rows, cols int, std float64, seed uint64, block int) error {
	if rows <= 0 || cols <= 0 || rows > (1<<31)/cols {
		return fmt.Errorf("matrix %d×%d: want positive sizes with at most 2³¹ elements", rows, cols)
	}
	if !(std > 0) {
		return fmt.Errorf("std %v: want a positive number", std)
	}
	r := rand.New(rand.NewPCG(seed, 0))
	w := make([]float32, rows*cols)
	for i := range w {
		w[i] = float32(r.NormFloat64() * std)
	}
	qs := []quant.Named{
		nf4Quantizer("nf4", nf4.Options{BlockSize: block}),
		nf4Quantizer("nf4-nodq", nf4.Options{BlockSize: block, DisableDoubleQuant: true}),
		quant.Named{Name: "fp4", Quantize: quant.FP4Quantizer(block)},
		quant.Named{Name: "int4", Quantize: quant.Int4Quantizer(block)},
		quant.Named{Name: "int8", Quantize: quant.Int8Quantizer(block)},
	}
	table, err := quant.Compare(ctx, w, rows, cols, qs)
	if err != nil {
		return err
	}
	fmt.Printf("%d×%d weights from N(0, %g²), seed %d\n\n", rows, cols, std, seed)
	return quant.WriteTable(os.Stdout, table)
}

// nf4Quantizer names nf4.Quantizer(opts) for quant.Compare.
func nf4Quantizer(name string, opts nf4.Options) quant.Named {
	return quant.Named{Name: name, Quantize: nf4.Quantizer(opts)}
}
