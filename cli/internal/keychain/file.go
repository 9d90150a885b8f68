package keychain

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"

	"github.com/unjuno/flm/core/secret"
)

// File keeps each secret in its own file, Dir/<name>, mode 0600. It is the
// explicit fallback for machines without a keychain: anyone who can read
// the data dir can read the key, so callers report it as a downgrade.
type File struct{ Dir string }

var _ secret.Store = File{}

var fileName = regexp.MustCompile(`^[a-z0-9][a-z0-9._-]{0,63}$`)

// Path is the file that holds name.
func (f File) Path(name string) string { return filepath.Join(f.Dir, name) }

func (f File) check(name string) error {
	if !fileName.MatchString(name) {
		return fmt.Errorf("invalid secret name %q", name)
	}
	return nil
}

// Get implements secret.Store.
func (f File) Get(ctx context.Context, name string) ([]byte, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if err := f.check(name); err != nil {
		return nil, err
	}
	b, err := os.ReadFile(f.Path(name))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("%s: %w", f.Path(name), secret.ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", f.Path(name), errors.Unwrap(err))
	}
	return bytes.TrimRight(b, "\r\n"), nil
}

// Put implements secret.Store: write a temporary file, sync, rename over
// the old one, sync the directory, so a crash leaves the old or the new
// value, never a torn one.
func (f File) Put(ctx context.Context, name string, value []byte) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := f.check(name); err != nil {
		return err
	}
	if !secret.ValidValue(value) {
		return fmt.Errorf("%s: value is not printable text of 1..%d bytes", name, secret.MaxValueBytes)
	}
	return WriteFileAtomic(f.Path(name), append(bytes.Clone(value), '\n'))
}

// Delete implements secret.Store. The file is overwritten before it is
// removed, so a deleted key does not linger in the file's old blocks where
// the file system rewrites in place.
func (f File) Delete(ctx context.Context, name string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := f.check(name); err != nil {
		return err
	}
	p := f.Path(name)
	if _, err := os.Lstat(p); errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("%s: %w", p, secret.ErrNotFound)
	}
	// The name goes first, atomically: a crash while the contents are
	// being overwritten must leave no half-zeroed file under the key's
	// name (a reader would take it for a damaged key). The temporary name
	// is one the data dir's stale-file cleanup shreds.
	tmp := filepath.Join(filepath.Dir(p), "."+filepath.Base(p)+".tmp-deleted")
	if err := os.Rename(p, tmp); err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("%s: %w", p, secret.ErrNotFound)
		}
		return fmt.Errorf("remove %s: %w", p, errors.Unwrap(err))
	}
	SyncDir(filepath.Dir(p))
	return Shred(tmp)
}

// WriteFileAtomic replaces path with data (0600) so that a crash leaves
// either the old or the new contents.
func WriteFileAtomic(path string, data []byte) error {
	dir := filepath.Dir(path)
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return fmt.Errorf("write %s: %w", path, errors.Unwrap(err))
	}
	defer os.Remove(tmp.Name())
	if err := tmp.Chmod(0o600); err != nil {
		tmp.Close()
		return fmt.Errorf("write %s: %w", path, err)
	}
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return fmt.Errorf("write %s: %w", path, errors.Unwrap(err))
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return fmt.Errorf("write %s: %w", path, errors.Unwrap(err))
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("write %s: %w", path, errors.Unwrap(err))
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("write %s: %w", path, errors.Unwrap(err))
	}
	SyncDir(dir)
	return nil
}

// SyncDir makes a rename in dir durable (a no-op where directories cannot
// be synced).
func SyncDir(dir string) {
	if d, err := os.Open(dir); err == nil {
		_ = d.Sync()
		_ = d.Close()
	}
}

// Shred overwrites a regular file with zeros, syncs it and removes it.
func Shred(path string) error {
	if f, err := os.OpenFile(path, os.O_WRONLY, 0); err == nil {
		if st, err := f.Stat(); err == nil && st.Mode().IsRegular() {
			zero := make([]byte, 64<<10)
			for left := st.Size(); left > 0; {
				n := min(left, int64(len(zero)))
				if _, err := f.Write(zero[:n]); err != nil {
					break
				}
				left -= n
			}
			_ = f.Sync()
		}
		_ = f.Close()
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("remove %s: %w", path, errors.Unwrap(err))
	}
	SyncDir(filepath.Dir(path))
	return nil
}
