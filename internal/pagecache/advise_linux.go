package pagecache

import (
	"bytes"
	"os"
	"strconv"

	"golang.org/x/sys/unix"
)

const (
	adviseWillNeed = unix.FADV_WILLNEED
	adviseDontNeed = unix.FADV_DONTNEED
)

// fadvise ignores the error: the advice is an optimisation.
func fadvise(file *os.File, off, n int64, advice int) {
	if file == nil {
		return
	}
	_ = unix.Fadvise(int(file.Fd()), off, n, advice)
}

func available() (int64, bool) {
	data, err := os.ReadFile("/proc/meminfo")
	if err != nil {
		return 0, false
	}
	return parseMemAvailable(data)
}

// parseMemAvailable reads the "MemAvailable:  123 kB" line of /proc/meminfo.
func parseMemAvailable(meminfo []byte) (int64, bool) {
	for line := range bytes.Lines(meminfo) {
		rest, ok := bytes.CutPrefix(line, []byte("MemAvailable:"))
		if !ok {
			continue
		}
		fields := bytes.Fields(rest)
		if len(fields) != 2 || string(fields[1]) != "kB" {
			return 0, false
		}
		kb, err := strconv.ParseInt(string(fields[0]), 10, 64)
		if err != nil || kb < 0 || kb > 1<<50 {
			return 0, false
		}
		return kb << 10, true
	}
	return 0, false
}
