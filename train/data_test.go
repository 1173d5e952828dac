package train

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// byteTokenizer maps each byte b to id b+3, with BOS 1 and EOS 2, like the
// byte-fallback part of a llama2.c vocabulary.
type byteTokenizer struct{}

func (byteTokenizer) Encode(s string) []int {
	ids := make([]int, len(s))
	for i := range len(s) {
		ids[i] = int(s[i]) + 3
	}
	return ids
}
func (byteTokenizer) BOS() int { return 1 }
func (byteTokenizer) EOS() int { return 2 }

func TestReadJSONLShapes(t *testing.T) {
	in := `{"text": "ab"}

{"prompt": "x", "completion": "yz"}
{"input_ids": [5, 6, 7]}
`
	exs, err := ReadJSONL(strings.NewReader(in), "d.jsonl", byteTokenizer{}, 300, 0)
	require.NoError(t, err)
	require.Len(t, exs, 3)
	// text: BOS a b EOS; every token after BOS is a target.
	require.Equal(t, []int{1, 'a' + 3, 'b' + 3, 2}, exs[0].Tokens)
	require.Equal(t, []bool{false, true, true, true}, exs[0].Loss)
	// prompt/completion: only the completion and EOS are targets.
	require.Equal(t, []int{1, 'x' + 3, 'y' + 3, 'z' + 3, 2}, exs[1].Tokens)
	require.Equal(t, []bool{false, false, true, true, true}, exs[1].Loss)
	require.Equal(t, []int{5, 6, 7}, exs[2].Tokens)
	require.Equal(t, []bool{false, true, true}, exs[2].Loss)
}

func TestReadJSONLErrorsNameTheLine(t *testing.T) {
	cases := map[string]string{
		"{\"text\": \"ok\"}\n{\"text\": 3}\n":       "d.jsonl:2: invalid JSON",
		"{\"text\": \"ok\"}\n{\"prompt\": \"p\"}\n": `d.jsonl:2: "prompt" and "completion" must come together`,
		"{\"text\": \"a\", \"input_ids\": [1]}\n":   "d.jsonl:1: want exactly one",
		"{}\n":                                  "d.jsonl:1: want exactly one",
		"{\"input_ids\": [1, 900]}\n":           "d.jsonl:1: input_ids[1] = 900 is outside the vocabulary [0, 300)",
		"{\"input_ids\": [4]}\n":                "d.jsonl:1: example has 1 tokens",
		"\n\n":                                  "d.jsonl: no examples",
		"{\"text\": \"a\"} {\"text\": \"b\"}\n": "d.jsonl:1: more than one JSON value",
	}
	for in, want := range cases {
		_, err := ReadJSONL(strings.NewReader(in), "d.jsonl", byteTokenizer{}, 300, 0)
		require.ErrorContains(t, err, want, "input %q", in)
	}
}

func TestBatcherPadsTruncatesAndMasks(t *testing.T) {
	exs := []Example{
		{Tokens: []int{1, 10, 11, 2}, Loss: []bool{false, true, true, true}},
		{Tokens: []int{1, 20, 21, 22, 23, 24, 2}, Loss: []bool{false, false, false, true, true, true, true}},
	}
	b, err := newBatcher(exs, batchOptions{Size: 2, SeqLen: 4, Pad: 0, Seed: 1})
	require.NoError(t, err)
	all := b.Batches()
	require.Len(t, all, 1)
	// Row 0: inputs 1 10 11 2, targets 10 11 2 and one padded position.
	require.Equal(t, []int{1, 10, 11, 2, 1, 20, 21, 22}, all[0].Inputs)
	// Row 1 is truncated to SeqLen+1 = 5 tokens; prompt targets (20, 21) are ignored.
	require.Equal(t, []int{10, 11, 2, Ignore, Ignore, Ignore, 22, 23}, all[0].Targets)
	require.Equal(t, 5, all[0].Tokens())
}

func TestBatcherPacking(t *testing.T) {
	exs := []Example{
		{Tokens: []int{1, 10, 11, 2}, Loss: []bool{false, true, true, true}},
		{Tokens: []int{1, 20, 21, 2}, Loss: []bool{false, true, true, true}},
	}
	b, err := newBatcher(exs, batchOptions{Size: 1, SeqLen: 3, Pad: 0, Seed: 1, Pack: true})
	require.NoError(t, err)
	// Stream 1 10 11 2 1 20 21 2 cut every 3 positions with one token of overlap.
	all := b.Batches()
	require.Len(t, all, 3)
	require.Equal(t, []int{1, 10, 11}, all[0].Inputs)
	require.Equal(t, []int{10, 11, 2}, all[0].Targets)
	require.Equal(t, []int{2, 1, 20}, all[1].Inputs)
	require.Equal(t, []int{Ignore, 20, 21}, all[1].Targets) // BOS is never a target
	require.Equal(t, []int{21, 2, 0}, all[2].Inputs)
	require.Equal(t, []int{2, Ignore, Ignore}, all[2].Targets)
}

func TestBatcherResumesExactly(t *testing.T) {
	var exs []Example
	for i := range 7 {
		exs = append(exs, Example{Tokens: []int{1, 10 + i, 2}, Loss: []bool{false, true, true}})
	}
	opts := batchOptions{Size: 3, SeqLen: 2, Seed: 42}
	full, err := newBatcher(exs, opts)
	require.NoError(t, err)
	var want [][]int
	for range 10 {
		want = append(want, full.Next().Inputs)
	}
	// Every example appears once per epoch.
	seen := map[int]int{}
	for _, in := range want[:7*2/6] {
		for r := 0; r < len(in); r += 2 {
			seen[in[r+1]]++
		}
	}
	for _, n := range seen {
		require.Equal(t, 1, n)
	}

	part, err := newBatcher(exs, opts)
	require.NoError(t, err)
	for range 4 {
		part.Next()
	}
	resumed, err := newBatcher(exs, opts)
	require.NoError(t, err)
	require.NoError(t, resumed.SetState(part.State()))
	for i := 4; i < 10; i++ {
		require.Equal(t, want[i], resumed.Next().Inputs, "batch %d", i)
	}
	require.Error(t, resumed.SetState(batcherState{Row: 99}))
}

func TestSplit(t *testing.T) {
	var exs []Example
	for i := range 10 {
		exs = append(exs, Example{Tokens: []int{1, i + 10}, Loss: []bool{false, true}})
	}
	tr, ev, err := Split(exs, 0.25, 7)
	require.NoError(t, err)
	require.Len(t, tr, 7)
	require.Len(t, ev, 3)
	seen := map[int]bool{}
	for _, e := range append(append([]Example{}, tr...), ev...) {
		seen[e.Tokens[1]] = true
	}
	require.Len(t, seen, 10, "every example lands in exactly one part")
	tr2, _, err := Split(exs, 0.25, 7)
	require.NoError(t, err)
	require.Equal(t, tr, tr2, "same seed, same split")
	_, _, err = Split(exs[:1], 0.5, 1)
	require.Error(t, err)
	_, _, err = Split(exs, 1, 1)
	require.Error(t, err)
	tr, ev, err = Split(exs, 0, 1)
	require.NoError(t, err)
	require.Len(t, tr, 10)
	require.Empty(t, ev)
}
