// Command genllama writes a random-weights BF16 Hugging Face checkpoint of a
// Llama-3 shape, for load benchmarks (issue 8): config.json, the weights in
// one model.safetensors or -shards files with an index, and the Llama-3
// tokenizer.json from golora's test data so that commands that tokenize can
// run on it. Weights are N(0, 0.02²) from a fixed seed; only their size and
// layout matter.
//
//	go run ./internal/cmd/genllama -shape 1b -out /work/scratch/llama1b
package main

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"encoding/binary"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"

	"github.com/golora/golora/internal/atomicfile"
	"github.com/golora/golora/internal/gguf"
	"github.com/golora/golora/internal/half"
	"github.com/golora/golora/internal/safetensors"
)

type shape struct {
	hidden, inter, layers, heads, kvHeads, vocab int
	tied                                         bool
}

var shapes = map[string]shape{
	"1b": {2048, 8192, 16, 32, 8, 128256, true},   // Llama-3.2-1B
	"8b": {4096, 14336, 32, 32, 8, 128256, false}, // Llama-3.1-8B
}

func main() {
	out := flag.String("out", "", "output directory (created)")
	name := flag.String("shape", "1b", "1b (Llama-3.2-1B) or 8b (Llama-3.1-8B)")
	shards := flag.Int("shards", 1, "safetensors files (more than 1: model-0000i-of-0000n.safetensors and an index)")
	tokenizer := flag.String("tokenizer", "model/tokenizer/testdata/llama3/tokenizer.json.gz", "gzipped tokenizer.json to copy")
	ggufOut := flag.String("gguf", "", "instead of a Hugging Face directory, write a BF16 GGUF file (arch llama, a placeholder SentencePiece vocabulary) to this path; the whole file is built in memory first")
	flag.Parse()
	s, ok := shapes[*name]
	if !ok || (*ggufOut == "" && (*out == "" || *shards < 1)) {
		flag.Usage()
		os.Exit(2)
	}
	var err error
	if *ggufOut != "" {
		err = writeGGUF(*ggufOut, s)
	} else {
		err = write(*out, s, *shards, *tokenizer)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "genllama:", err)
		os.Exit(1)
	}
}

func write(dir string, s shape, shards int, tokPath string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	cfg := map[string]any{
		"architectures": []string{"LlamaForCausalLM"}, "model_type": "llama",
		"hidden_size": s.hidden, "intermediate_size": s.inter, "num_hidden_layers": s.layers,
		"num_attention_heads": s.heads, "num_key_value_heads": s.kvHeads, "vocab_size": s.vocab,
		"max_position_embeddings": 8192, "rms_norm_eps": 1e-5, "rope_theta": 500000.0,
		"tie_word_embeddings": s.tied, "hidden_act": "silu", "torch_dtype": "bfloat16",
	}
	if err := writeJSON(filepath.Join(dir, "config.json"), cfg); err != nil {
		return err
	}
	if err := copyTokenizer(tokPath, filepath.Join(dir, "tokenizer.json")); err != nil {
		return err
	}
	tensors := []safetensors.StreamTensor{matrix("model.embed_tokens.weight", s.vocab, s.hidden, 1)}
	kv := s.hidden / s.heads * s.kvHeads
	for l := range s.layers {
		p := fmt.Sprintf("model.layers.%d.", l)
		seed := uint64(100 + 10*l)
		tensors = append(tensors,
			ones(p+"input_layernorm.weight", s.hidden),
			matrix(p+"self_attn.q_proj.weight", s.hidden, s.hidden, seed),
			matrix(p+"self_attn.k_proj.weight", kv, s.hidden, seed+1),
			matrix(p+"self_attn.v_proj.weight", kv, s.hidden, seed+2),
			matrix(p+"self_attn.o_proj.weight", s.hidden, s.hidden, seed+3),
			ones(p+"post_attention_layernorm.weight", s.hidden),
			matrix(p+"mlp.gate_proj.weight", s.inter, s.hidden, seed+4),
			matrix(p+"mlp.up_proj.weight", s.inter, s.hidden, seed+5),
			matrix(p+"mlp.down_proj.weight", s.hidden, s.inter, seed+6))
	}
	tensors = append(tensors, ones("model.norm.weight", s.hidden))
	if !s.tied {
		tensors = append(tensors, matrix("lm_head.weight", s.vocab, s.hidden, 2))
	}
	if shards == 1 {
		return safetensors.WriteStreamFile(filepath.Join(dir, "model.safetensors"), tensors, map[string]string{"format": "pt"})
	}
	weightMap := map[string]string{}
	per := (len(tensors) + shards - 1) / shards
	for i := 0; i < shards; i++ {
		part := tensors[min(i*per, len(tensors)):min((i+1)*per, len(tensors))]
		name := fmt.Sprintf("model-%05d-of-%05d.safetensors", i+1, shards)
		for _, t := range part {
			weightMap[t.Name] = name
		}
		if err := safetensors.WriteStreamFile(filepath.Join(dir, name), part, map[string]string{"format": "pt"}); err != nil {
			return err
		}
	}
	return writeJSON(filepath.Join(dir, "model.safetensors.index.json"), map[string]any{"metadata": map[string]any{}, "weight_map": weightMap})
}

// matrix is a [rows, cols] BF16 tensor of N(0, 0.02²) values, generated
// row by row as it is written.
func matrix(name string, rows, cols int, seed uint64) safetensors.StreamTensor {
	return safetensors.StreamTensor{Name: name, DType: safetensors.BF16, Shape: []int{rows, cols}, WriteData: func(w io.Writer) error {
		rng := rand.New(rand.NewPCG(seed, 0x9e3779b97f4a7c15))
		bw := bufio.NewWriterSize(w, 1<<20)
		row := make([]byte, 2*cols)
		for range rows {
			for c := range cols {
				binary.LittleEndian.PutUint16(row[2*c:], half.Float32ToBF16(float32(0.02*rng.NormFloat64())))
			}
			if _, err := bw.Write(row); err != nil {
				return err
			}
		}
		return bw.Flush()
	}}
}

func ones(name string, n int) safetensors.StreamTensor {
	return safetensors.StreamTensor{Name: name, DType: safetensors.BF16, Shape: []int{n}, WriteData: func(w io.Writer) error {
		b := make([]byte, 2*n)
		for i := range n {
			binary.LittleEndian.PutUint16(b[2*i:], half.Float32ToBF16(1))
		}
		_, err := w.Write(b)
		return err
	}}
}

// writeGGUF writes the shape as a llama GGUF with BF16 tensors and a
// vocabulary of placeholder pieces "<t0>", "<t1>", ….
func writeGGUF(path string, s shape) error {
	var b gguf.Builder
	kv := s.hidden / s.heads * s.kvHeads
	tokens := make([]string, s.vocab)
	for i := range tokens {
		tokens[i] = fmt.Sprintf("<t%d>", i)
	}
	for _, p := range []struct {
		key string
		v   any
	}{
		{"general.architecture", "llama"}, {"llama.embedding_length", uint32(s.hidden)},
		{"llama.feed_forward_length", uint32(s.inter)}, {"llama.block_count", uint32(s.layers)},
		{"llama.attention.head_count", uint32(s.heads)}, {"llama.attention.head_count_kv", uint32(s.kvHeads)},
		{"llama.context_length", uint32(8192)}, {"llama.attention.layer_norm_rms_epsilon", float32(1e-5)},
		{"llama.rope.freq_base", float32(500000)}, {"tokenizer.ggml.model", "llama"}, {"tokenizer.ggml.tokens", tokens},
	} {
		if err := b.AddKV(p.key, p.v); err != nil {
			return err
		}
	}
	add := func(t safetensors.StreamTensor) error {
		var buf bytes.Buffer
		if err := t.WriteData(&buf); err != nil {
			return err
		}
		if len(t.Shape) == 1 {
			return b.AddTensor(t.Name, gguf.TypeBF16, []uint64{uint64(t.Shape[0])}, buf.Bytes())
		}
		return b.AddMatrix(t.Name, gguf.TypeBF16, t.Shape[0], t.Shape[1], buf.Bytes())
	}
	ts := []safetensors.StreamTensor{matrix("token_embd.weight", s.vocab, s.hidden, 1), ones("output_norm.weight", s.hidden)}
	if !s.tied {
		ts = append(ts, matrix("output.weight", s.vocab, s.hidden, 2))
	}
	for l := range s.layers {
		p := fmt.Sprintf("blk.%d.", l)
		seed := uint64(100 + 10*l)
		ts = append(ts, ones(p+"attn_norm.weight", s.hidden), ones(p+"ffn_norm.weight", s.hidden),
			matrix(p+"attn_q.weight", s.hidden, s.hidden, seed), matrix(p+"attn_k.weight", kv, s.hidden, seed+1),
			matrix(p+"attn_v.weight", kv, s.hidden, seed+2), matrix(p+"attn_output.weight", s.hidden, s.hidden, seed+3),
			matrix(p+"ffn_gate.weight", s.inter, s.hidden, seed+4), matrix(p+"ffn_up.weight", s.inter, s.hidden, seed+5),
			matrix(p+"ffn_down.weight", s.hidden, s.inter, seed+6))
	}
	for _, t := range ts {
		if err := add(t); err != nil {
			return err
		}
	}
	return atomicfile.WriteFile(path, func(w io.Writer) error {
		_, err := b.WriteTo(w)
		return err
	}, 0o644)
}

func writeJSON(path string, v any) error {
	data, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(path, append(data, '\n'), 0o644)
}

func copyTokenizer(src, dst string) error {
	f, err := os.Open(src)
	if err != nil {
		return err
	}
	defer f.Close()
	zr, err := gzip.NewReader(f)
	if err != nil {
		return fmt.Errorf("%s: %w", src, err)
	}
	data, err := io.ReadAll(zr)
	if err != nil {
		return fmt.Errorf("%s: %w", src, err)
	}
	return os.WriteFile(dst, data, 0o644)
}
