// This file holds the lock that marks a generation directory as in use:
// its Recorder holds an exclusive flock on gen/lock for as long as it
// runs, and the kernel drops it when the process dies. Recover takes only
// the generations whose lock it can take, so two processes pointed at one
// spool directory never finish each other's live recordings.

package callrec

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"syscall"
)

const lockName = "lock"

// genLock is a held generation lock.
type genLock struct{ f *os.File }

// lockGen takes gen's lock; ok is false when another process holds it.
func lockGen(gen string) (l genLock, ok bool, err error) {
	f, err := os.OpenFile(filepath.Join(gen, lockName), os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return genLock{}, false, fmt.Errorf("callrec: generation lock: %w", err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return genLock{}, false, nil
		}
		return genLock{}, false, fmt.Errorf("callrec: generation lock: %w", err)
	}
	return genLock{f: f}, true, nil
}

// unlock releases the lock (closing the file drops the flock).
func (l genLock) unlock() {
	if l.f != nil {
		l.f.Close()
	}
}
