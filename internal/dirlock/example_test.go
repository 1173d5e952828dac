package dirlock_test

import (
	"errors"
	"fmt"
	"log"
	"os"

	"github.com/golora/golora/internal/dirlock"
)

func Example() {
	dir, err := os.MkdirTemp("", "run")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)
	lock, err := dirlock.Acquire(dir)
	if err != nil {
		log.Fatal(err)
	}
	defer lock.Release()
	_, err = dirlock.Acquire(dir) // a second writer
	fmt.Println(errors.Is(err, dirlock.ErrLocked))
	// Output: true
}
