package atomicfile_test

import (
	"fmt"
	"io"
	"log"
	"os"
	"path/filepath"

	"github.com/golora/golora/internal/atomicfile"
)

func Example() {
	dir, err := os.MkdirTemp("", "atomicfile")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)
	path := filepath.Join(dir, "state.json")
	write := func(s string) error {
		return atomicfile.WriteFile(path, func(w io.Writer) error {
			_, err := io.WriteString(w, s)
			return err
		}, 0o644)
	}
	if err := write(`{"step": 1}`); err != nil {
		log.Fatal(err)
	}
	// A write that fails part way leaves the previous contents in place.
	err = atomicfile.WriteFile(path, func(w io.Writer) error {
		io.WriteString(w, `{"st`)
		return fmt.Errorf("disk full")
	}, 0o644)
	data, _ := os.ReadFile(path)
	fmt.Println(err != nil, string(data))
	// Output: true {"step": 1}
}
