package gguf

import (
	"cmp"
	"strings"
)

// CompareTensorNames orders tensor names as llama-quantize writes them:
// tensors outside the blocks first, then block by block ("blk.N.…" by N),
// by name within each.
func CompareTensorNames(a, b string) int {
	return cmp.Or(cmp.Compare(blockOf(a), blockOf(b)), strings.Compare(a, b))
}

// blockOf returns N for a tensor named "blk.N.…", else −1.
func blockOf(name string) int {
	rest, ok := strings.CutPrefix(name, "blk.")
	if !ok {
		return -1
	}
	n, i := 0, 0
	for ; i < len(rest) && rest[i] >= '0' && rest[i] <= '9'; i++ {
		n = 10*n + int(rest[i]-'0')
	}
	if i == 0 || i == len(rest) || rest[i] != '.' {
		return -1
	}
	return n
}
