//go:build !unix

package pagecache

import "os"

func pageSize() int { return os.Getpagesize() }

func drop([]byte) {}
