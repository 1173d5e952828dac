//go:build !unix

package safetensors

import (
	"fmt"
	"os"
)

// Open reads the named file into memory and parses it. (On Unix systems the
// file is memory-mapped instead.) Close is harmless but not required here.
func Open(path string) (*File, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("safetensors: %w", err)
	}
	return parse(data, path)
}
