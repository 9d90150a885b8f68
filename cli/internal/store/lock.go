package store

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"time"

	"github.com/unjuno/flm/core/flmerr"
)

// dbLock is the advisory lock on security.db.lock. Every handle of
// security.db holds it shared for its whole life; the operations that
// replace the file (first-time encryption, key rotation, key import) hold
// it exclusive, so no other process can be reading or writing a file that
// is about to be swapped, or open it with a key that is about to change.
type dbLock struct {
	f    *os.File
	mode lockMode
}

type lockMode int

const (
	lockNone lockMode = iota
	lockShared
	lockExclusive
)

func openLock(path string) (*dbLock, error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, flmerr.Wrap(err, flmerr.IOError, "open lock file")
	}
	return &dbLock{f: f}, nil
}

// lockWait is how long an open waits for a swap in another process (and a
// swap for open handles to close); tests shorten it.
var lockWait = BusyTimeout

// errLockBusy: another process holds the lock in a conflicting mode.
var errLockBusy = errors.New("lock busy")

// to switches the lock to mode, waiting up to wait. A switch is a release
// and a new acquisition (not atomic), so two processes that both upgrade
// cannot deadlock; callers re-check the state after an upgrade.
func (l *dbLock) to(ctx context.Context, mode lockMode, wait time.Duration) error {
	if l.mode == mode {
		return nil
	}
	if l.mode != lockNone {
		if err := unlockFile(l.f); err != nil {
			return fmt.Errorf("release lock: %w", err)
		}
		l.mode = lockNone
	}
	deadline := time.Now().Add(wait)
	for {
		err := tryLockFile(l.f, mode == lockExclusive)
		if err == nil {
			l.mode = mode
			return nil
		}
		if !errors.Is(err, errLockBusy) {
			return fmt.Errorf("lock %s: %w", l.f.Name(), err)
		}
		if time.Now().After(deadline) {
			return errLockBusy
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(time.Duration(5+rand.IntN(20)) * time.Millisecond):
		}
	}
}

func (l *dbLock) close() {
	if l == nil || l.f == nil {
		return
	}
	_ = unlockFile(l.f)
	_ = l.f.Close()
	l.f = nil
}

// TryLock takes an exclusive advisory lock on path (created 0600 if
// missing) without waiting. busy reports that another open file (another
// process, or another TryLock in this one) holds it; release frees it.
func TryLock(path string) (release func(), busy bool, err error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, false, flmerr.Wrap(err, flmerr.IOError, "open lock file %s", path)
	}
	switch err := tryLockFile(f, true); {
	case errors.Is(err, errLockBusy):
		f.Close()
		return nil, true, nil
	case err != nil:
		f.Close()
		return nil, false, flmerr.Wrap(err, flmerr.IOError, "lock %s", path)
	}
	return func() { _ = unlockFile(f); f.Close() }, false, nil
}
