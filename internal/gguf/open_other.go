//go:build !unix

package gguf

import (
	"fmt"

	"github.com/golora/golora/internal/fsutil"
)

// Open reads the GGUF file at path and parses it. Call Close when done.
func Open(path string) (*File, error) {
	data, err := fsutil.ReadRegular(path, 1<<62)
	if err != nil {
		return nil, err
	}
	f, err := Parse(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return f, nil
}
