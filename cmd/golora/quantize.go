package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"math"
	"os"
	"strings"
	"text/tabwriter"

	"github.com/golora/golora/model"
	"github.com/golora/golora/nf4"
	"github.com/golora/golora/quant"
	"github.com/golora/golora/quant/ggml"
)

func runQuantize(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("quantize", flag.ContinueOnError)
	var mf modelFlags
	registerBaseFlags(fs, &mf)
	out := fs.String("out", "", "output directory for the quantized Hugging Face checkpoint, or the .gguf file with --format gguf (required)")
	format := fs.String("format", "hf", "output format: hf (NF4, bitsandbytes layout) or gguf (a llama.cpp file, see --type)")
	ggufType := fs.String("type", "q8_0", "GGUF tensor type with --format gguf: q8_0 or q4_k (llama-quantize's rules: rows that do not fit fall back as it does, norms stay F32), or f16 or f32 (unquantized)")
	blockSize := fs.Int("block-size", nf4.DefaultBlockSize, "weights per absmax block: a power of two from 32 to 4096")
	noDoubleQuant := fs.Bool("no-double-quant", false, "keep each block's absmax in float32 (4.5 bits/param at block 64) instead of 8 bits (about 4.127)")
	dtypeName := fs.String("dtype", "f32", "dtype of the tensors kept in float (embedding, norms, output head): f32, bf16 or f16")
	compare := fs.Bool("compare", true, "also quantize every linear to FP4, INT4 and INT8 with the same block size, for the format comparison")
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), `Usage: golora quantize --out DIR [flags]

Quantizes every linear layer of the transformer blocks to 4-bit NF4, as QLoRA
does (the embedding, the norms and the output head stay in float), and writes
a Hugging Face checkpoint in bitsandbytes' 4-bit layout, with the
quantization_config transformers writes, so that transformers loads it as a
bitsandbytes 4-bit model and "golora generate --model DIR" runs it.

Prints each linear's quantization error against its float32 weights (MSE,
largest absolute error, SQNR, bits/parameter), the whole model's, and the same
figures for FP4, INT4 and INT8 on the same weights.

With --format gguf --type q8_0|q4_k|f16|f32, writes instead a llama.cpp GGUF
file (--out FILE.gguf) as llama-quantize would for that type, e.g. of a model
"golora merge" wrote, so that llama.cpp runs it: Llama 2 and 3, Mistral,
Qwen2, Qwen3 and Phi-3 models, with their SentencePiece or byte-level BPE
tokenizer and their chat template.

Flags:
`)
		fs.PrintDefaults()
	}
	if err := parseFlags(fs, args, stderr); err != nil {
		return err
	}
	if *out == "" {
		fmt.Fprintln(stderr, "golora quantize: --out is required")
		fs.Usage()
		return errUsage
	}
	switch *format {
	case "hf":
	case "gguf":
		return quantizeGGUF(ctx, &mf, *out, *ggufType, stdout, stderr)
	default:
		return fmt.Errorf("--format %q: want hf or gguf", *format)
	}
	dtype, err := parseDType(*dtypeName)
	if err != nil {
		return err
	}
	if err := quant.ValidateBlockSize(*blockSize); err != nil {
		return fmt.Errorf("--block-size: %w", err)
	}
	if err := checkNewOut(*out); err != nil {
		return err
	}
	opts := nf4.Options{BlockSize: *blockSize, DisableDoubleQuant: *noDoubleQuant}
	ck, err := mf.load(ctx, stderr)
	if err != nil {
		return err
	}
	before := ck.Weights.WeightBytes()
	var others []quant.Named
	if *compare {
		others = []quant.Named{quant.Named{Name: "fp4", Quantize: quant.FP4Quantizer(*blockSize)}, quant.Named{Name: "int4", Quantize: quant.Int4Quantizer(*blockSize)}, quant.Named{Name: "int8", Quantize: quant.Int8Quantizer(*blockSize)}}
	}
	rep, err := quantizeLinears(ctx, ck.Weights, opts, others)
	if err != nil {
		return err
	}
	after := ck.Weights.WeightBytes()

	if err := rep.write(stdout); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "\nweights: %.2f MB in float32 -> %.2f MB (%.2f MB of NF4 linears, %.2f MB kept in float32)\n",
		mb(before.Total()), mb(after.Total()), mb(after.Quantized), mb(after.Float32))

	if err := writeModelDir(*out, ck, ck.Weights, dtype); err != nil {
		return err
	}
	return printWritten(stdout, *out, *dtypeName)
}

func mb(b int64) float64 { return float64(b) / 1e6 }

// quantizeGGUF writes the model as a GGUF file of the named block type.
func quantizeGGUF(ctx context.Context, mf *modelFlags, out, typeName string, stdout, stderr io.Writer) error {
	var typ ggml.Type
	switch strings.ToLower(typeName) {
	case "f32":
		typ = model.GGUFF32
	case "f16":
		typ = model.GGUFF16
	default:
		var err error
		typ, err = ggml.ParseType(typeName)
		if err != nil || (typ != ggml.Q8_0 && typ != ggml.Q4_K) {
			return fmt.Errorf("--type %q: want q8_0, q4_k, f16 or f32", typeName)
		}
	}
	ck, err := mf.load(ctx, stderr)
	if err != nil {
		return err
	}
	if err := model.WriteGGUF(out, ck, typ); err != nil {
		return err
	}
	st, err := os.Stat(out)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "wrote %s: %s GGUF, %.2f MB\n", out, strings.ToLower(typeName), mb(st.Size()))
	return nil
}

// quantReport holds the quality of every quantized linear and, per format,
// the totals over all of them.
type quantReport struct {
	linears []linearQuality
	formats []*formatTotal // NF4 first, then the compared formats in order
}

type linearQuality struct {
	name    string
	out, in int
	quant.Quality
}

// formatTotal accumulates one format's error over many matrices, so that the
// whole model's figures weigh every parameter equally.
type formatTotal struct {
	format      string
	params      float64
	sumErr2     float64 // Σ(w−ŵ)²
	sumSig2     float64 // Σw²
	maxAbsErr   float64
	storageBits float64
}

func (t *formatTotal) add(q quant.Quality, params, sumSig2 float64) {
	t.params += params
	t.sumErr2 += q.MSE * params
	t.sumSig2 += sumSig2
	t.maxAbsErr = max(t.maxAbsErr, q.MaxAbsErr)
	t.storageBits += q.BitsPerParam * params
}

func (t *formatTotal) quality() quant.Quality {
	q := quant.Quality{
		Format:       t.format,
		MSE:          t.sumErr2 / t.params,
		MaxAbsErr:    t.maxAbsErr,
		SQNR:         math.Inf(1),
		BitsPerParam: t.storageBits / t.params,
	}
	if t.sumErr2 > 0 {
		q.SQNR = 10 * math.Log10(t.sumSig2/t.sumErr2)
	}
	return q
}

// quantizeLinears replaces every block linear of w by its NF4 quantization,
// measuring each against its float32 weights before they are dropped, and
// measuring the formats of others on the same weights for comparison.
func quantizeLinears(ctx context.Context, w *model.Weights, opts nf4.Options, others []quant.Named) (*quantReport, error) {
	rep := &quantReport{formats: []*formatTotal{{format: "nf4"}}}
	for _, q := range others {
		rep.formats = append(rep.formats, &formatTotal{format: q.Name})
	}
	for _, lin := range w.Linears() {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		if lin.Quantized != nil {
			return nil, fmt.Errorf("%s is already %s-quantized: quantize a float checkpoint", lin.Name, lin.Quantized.Format())
		}
		m, err := nf4.Quantize(lin.Dense, lin.Out, lin.In, opts)
		if err != nil {
			return nil, fmt.Errorf("quantizing %s: %w", lin.Name, err)
		}
		q, err := quant.Measure(lin.Dense, m)
		if err != nil {
			return nil, fmt.Errorf("measuring %s: %w", lin.Name, err)
		}
		var sumSig2 float64
		for _, v := range lin.Dense {
			sumSig2 += float64(v) * float64(v)
		}
		params := float64(len(lin.Dense))
		rep.formats[0].add(q, params, sumSig2)
		if len(others) > 0 {
			cmp, err := quant.Compare(ctx, lin.Dense, lin.Out, lin.In, others)
			if err != nil {
				return nil, fmt.Errorf("comparing formats on %s: %w", lin.Name, err)
			}
			for i, c := range cmp {
				rep.formats[i+1].add(c, params, sumSig2)
			}
		}
		rep.linears = append(rep.linears, linearQuality{name: lin.Name, out: lin.Out, in: lin.In, Quality: q})
		lin.Quantized, lin.Dense = m, nil
	}
	return rep, nil
}

// write prints the per-linear table, the model's NF4 total and the format
// comparison.
func (r *quantReport) write(w io.Writer) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "linear\tshape\tbits/param\tMSE\tmax |err|\tSQNR (dB)")
	row := func(name, shape string, q quant.Quality) {
		fmt.Fprintf(tw, "%s\t%s\t%.3f\t%.3e\t%.3e\t%.2f\n", name, shape, q.BitsPerParam, q.MSE, q.MaxAbsErr, q.SQNR)
	}
	for _, l := range r.linears {
		row(l.name, fmt.Sprintf("%dx%d", l.out, l.in), l.Quality)
	}
	row(fmt.Sprintf("all %d linears", len(r.linears)), fmt.Sprintf("%.0f params", r.formats[0].params), r.formats[0].quality())
	if err := tw.Flush(); err != nil {
		return err
	}
	if len(r.formats) == 1 {
		return nil
	}
	fmt.Fprintf(w, "\nformats on the same %d linears (same block size; totals over all their parameters):\n", len(r.linears))
	qs := make([]quant.Quality, len(r.formats))
	for i, f := range r.formats {
		qs[i] = f.quality()
	}
	return quant.WriteTable(w, qs)
}
