//go:build unix

package datasets

import (
	"errors"
	"os"
	"syscall"
)

// lockShared takes a shared flock on f without waiting (the lock bbolt's
// readers take; a writer holds it exclusively). false: a writer holds it.
func lockShared(f *os.File) (bool, error) {
	err := syscall.Flock(int(f.Fd()), syscall.LOCK_SH|syscall.LOCK_NB)
	if errors.Is(err, syscall.EWOULDBLOCK) {
		return false, nil
	}
	return err == nil, err
}
