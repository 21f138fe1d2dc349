//go:build !linux

package residency

import "errors"

func releaseExecutable() (Result, error) { return Result{}, errors.ErrUnsupported }
