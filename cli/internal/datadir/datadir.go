// Package datadir finds and prepares FLM's data directory (PRODUCT.md §3):
// --data-dir, else FLM_DATA_DIR, else the OS default. The directory and its
// subdirectories are 0700: they hold key hashes, certificates and backups.
package datadir

import (
	"errors"
	"os"
	"path/filepath"
	"runtime"

	"github.com/unjuno/flm/core/flmerr"
)

// Subdirs are created inside the data dir.
var Subdirs = []string{"run", "certs", "backups", "logs"}

// Resolve returns the data dir: flag, else env("FLM_DATA_DIR"), else the OS
// default. The result is absolute.
func Resolve(flag string, env func(string) string) (string, error) {
	dir := flag
	if dir == "" {
		dir = env("FLM_DATA_DIR")
	}
	if dir == "" {
		var err error
		if dir, err = osDefault(runtime.GOOS, env); err != nil {
			return "", err
		}
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		return "", flmerr.Wrap(err, flmerr.IOError, "resolve data dir %q", dir)
	}
	return abs, nil
}

func osDefault(goos string, env func(string) string) (string, error) {
	home := env("HOME")
	switch goos {
	case "windows":
		if d := env("LOCALAPPDATA"); d != "" {
			return filepath.Join(d, "flm"), nil
		}
		home = env("USERPROFILE")
		if home != "" {
			return filepath.Join(home, "AppData", "Local", "flm"), nil
		}
	case "darwin":
		if home != "" {
			return filepath.Join(home, "Library", "Application Support", "flm"), nil
		}
	default:
		if d := env("XDG_DATA_HOME"); d != "" && filepath.IsAbs(d) {
			return filepath.Join(d, "flm"), nil
		}
		if home != "" {
			return filepath.Join(home, ".local", "share", "flm"), nil
		}
	}
	return "", flmerr.New(flmerr.IOError, "cannot find a home directory for the data dir; pass --data-dir or set FLM_DATA_DIR")
}

// Ensure creates dir and its subdirectories with mode 0700 and checks that
// dir is writable. Existing directories keep their mode; `flm check` warns
// about loose ones.
func Ensure(dir string) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return flmerr.Wrap(err, flmerr.IOError, "create data dir %s", dir)
	}
	for _, s := range Subdirs {
		if err := os.Mkdir(filepath.Join(dir, s), 0o700); err != nil && !errors.Is(err, os.ErrExist) {
			return flmerr.Wrap(err, flmerr.IOError, "create %s", filepath.Join(dir, s))
		}
	}
	f, err := os.CreateTemp(dir, ".write-test-*")
	if err != nil {
		return flmerr.Wrap(err, flmerr.IOError, "data dir %s is not writable", dir)
	}
	name := f.Name()
	_ = f.Close()
	_ = os.Remove(name)
	return nil
}
