//go:build !linux

package model

import (
	"errors"
	"os"
)

var errNoDirect = errors.New("O_DIRECT is not supported here")

func openDirect(string) (*os.File, error) { return nil, errNoDirect }

func preadDirect(*os.File, []byte, int64) (int, error) { return 0, errNoDirect }
