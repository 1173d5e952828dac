//go:build !linux

package pagecache

import "os"

const (
	adviseWillNeed = iota
	adviseDontNeed
)

func fadvise(*os.File, int64, int64, int) {}

func available() (int64, bool) { return 0, false }
