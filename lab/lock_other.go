//go:build !unix

package lab

import (
	"errors"
	"fmt"
	"os"
	"time"
)

// lockFile takes the lock by creating path exclusively, waiting up to timeout. A process that dies holding
// it leaves the file behind: the error says to remove it.
func lockFile(path string, timeout time.Duration) (unlock func(), err error) {
	deadline := time.Now().Add(timeout)
	for {
		f, err := os.OpenFile(path+".held", os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
		if err == nil {
			f.Close()
			return func() { os.Remove(path + ".held") }, nil
		}
		if !errors.Is(err, os.ErrExist) {
			return nil, fmt.Errorf("lab: locking %s: %w", path, err)
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("%w (%s.held; remove it if no staple process runs)", ErrLocked, path)
		}
		time.Sleep(lockPoll)
	}
}
