//go:build unix

package service

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/unjuno/flm/core/flmerr"
)

// checkTrustedPath makes sure that nobody but root (or the user running
// flm, who is root for a system service) can replace path or any directory
// above it, so that root never writes through, chowns or runs something a
// user planted. Symlinks are followed and must be owned by root too. A
// component that does not exist yet is fine when its parent cannot be
// written by others (flm creates it). leafOwners are further owners
// accepted for path itself (the `flm` user for its data dir).
func checkTrustedPath(what, path string, leafOwners ...int) error {
	trusted := func(uid int, leaf bool) bool {
		if uid == 0 || uid == os.Geteuid() {
			return true
		}
		if leaf {
			for _, o := range leafOwners {
				if uid == o {
					return true
				}
			}
		}
		return false
	}
	refuse := func(format string, args ...any) error {
		return flmerr.New(flmerr.InvalidArgument, "%s %s: %s; a root service must not use a path another user can replace. Use a path only root can write (for example /usr/local/bin for the binary, /var/lib/flm for the data)",
			what, path, strings.TrimSpace(fmt.Sprintf(format, args...)))
	}
	rest := splitPath(filepath.Clean(path))
	cur, hops, parentOpen := "/", 0, false
	for len(rest) > 0 {
		name := rest[0]
		rest = rest[1:]
		switch name {
		case "", ".":
			continue
		case "..":
			cur = filepath.Dir(cur)
			continue
		}
		next := filepath.Join(cur, name)
		fi, err := os.Lstat(next)
		if errors.Is(err, fs.ErrNotExist) {
			if parentOpen {
				return refuse("%s does not exist and %s can be written by other users", next, cur)
			}
			return nil
		}
		if err != nil {
			return flmerr.Wrap(err, flmerr.IOError, "check %s", next)
		}
		st, ok := fi.Sys().(*syscall.Stat_t)
		if !ok {
			return nil
		}
		leaf := len(rest) == 0
		if !trusted(int(st.Uid), leaf) {
			return refuse("%s belongs to uid %d", next, st.Uid)
		}
		if fi.Mode()&fs.ModeSymlink != 0 {
			if hops++; hops > 40 {
				return refuse("too many symlinks")
			}
			target, err := os.Readlink(next)
			if err != nil {
				return flmerr.Wrap(err, flmerr.IOError, "read the symlink %s", next)
			}
			if filepath.IsAbs(target) {
				cur = "/"
			}
			rest = append(splitPath(target), rest...)
			continue
		}
		open := fi.Mode().Perm()&0o002 != 0 || fi.Mode().Perm()&0o020 != 0 && st.Gid != 0
		if leaf && !fi.IsDir() && open {
			return refuse("%s can be written by other users (mode %04o)", next, fi.Mode().Perm())
		}
		if !leaf {
			if !fi.IsDir() {
				return refuse("%s is not a directory", next)
			}
			// Writable by others: only a sticky dir (/tmp) whose entries
			// others cannot replace, and then only for root-owned entries
			// that already exist (checked on the next step).
			if open && fi.Mode()&fs.ModeSticky == 0 {
				return refuse("%s can be written by other users (mode %04o)", next, fi.Mode().Perm())
			}
			parentOpen = open
		}
		cur = next
	}
	return nil
}

func splitPath(p string) []string {
	return strings.Split(strings.Trim(p, "/"), "/")
}
