package train

import (
	"bufio"
	"bytes"
	"os"
	"testing"
)

// FuzzReadJSONL feeds arbitrary bytes to the JSONL reader: it must return
// examples or an error, never panic, and every example it returns must be
// usable (tokens in range, one loss flag per token, something to predict).
// Seeds are lines of the quick start's real training file and hand-made
// variants of each record shape.
func FuzzReadJSONL(f *testing.F) {
	data, err := os.ReadFile("../examples/quickstart/data/eval.jsonl")
	if err != nil {
		f.Fatal(err)
	}
	sc := bufio.NewScanner(bytes.NewReader(data))
	for i := 0; sc.Scan() && i < 3; i++ {
		f.Add(append([]byte(nil), sc.Bytes()...))
	}
	f.Add([]byte(`{"prompt": "Q: 2+2?", "completion": " 4"}` + "\n" + `{"input_ids": [1, 5, 9]}`))
	f.Add([]byte("{\"text\": \"caf\u00e9 \\u00e9\"}\n\n{\"text\": \"\"}"))
	f.Add([]byte(`{"input_ids": [1, -5]}`))
	f.Fuzz(func(t *testing.T, in []byte) {
		const vocab = 300
		exs, err := ReadJSONL(bytes.NewReader(in), "fuzz.jsonl", byteTokenizer{}, vocab, 0)
		if err != nil {
			return
		}
		if err := checkExamples("fuzzed", exs, vocab); err != nil {
			t.Fatalf("ReadJSONL returned an unusable example: %v", err)
		}
		for i, ex := range exs {
			if len(ex.Tokens) < 2 {
				t.Fatalf("example %d has %d tokens", i, len(ex.Tokens))
			}
		}
	})
}
