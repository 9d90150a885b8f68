//go:build !windows

package truststore

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
)

// home is the directory whose NSS databases are updated: the invoking
// user's, also under sudo (root's own profile is rarely the browser's).
func (o Options) home() string {
	if o.Home != "" {
		return o.Home
	}
	if su := os.Getenv("SUDO_USER"); su != "" && os.Geteuid() == 0 {
		if u, err := user.Lookup(su); err == nil && u.HomeDir != "" {
			return u.HomeDir
		}
	}
	h, _ := os.UserHomeDir()
	return h
}

// nssDBs returns the NSS databases under home, as certutil -d arguments
// ("sql:DIR" for cert9.db, "dbm:DIR" for the legacy cert8.db).
func nssDBs(home string) []string {
	if home == "" {
		return nil
	}
	dirs := []string{filepath.Join(home, ".pki", "nssdb"), filepath.Join(home, "snap", "chromium", "current", ".pki", "nssdb")}
	globs := []string{
		filepath.Join(home, ".mozilla", "firefox", "*"),
		filepath.Join(home, "snap", "firefox", "common", ".mozilla", "firefox", "*"),
	}
	if runtime.GOOS == "darwin" {
		globs = append(globs, filepath.Join(home, "Library", "Application Support", "Firefox", "Profiles", "*"))
	}
	for _, g := range globs {
		m, _ := filepath.Glob(g)
		dirs = append(dirs, m...)
	}
	var out []string
	for _, d := range dirs {
		switch {
		case exists(filepath.Join(d, "cert9.db")):
			out = append(out, "sql:"+d)
		case exists(filepath.Join(d, "cert8.db")):
			out = append(out, "dbm:"+d)
		}
	}
	return out
}

func exists(p string) bool { _, err := os.Stat(p); return err == nil }

// nssUser is who certutil runs as: the owner of the NSS databases.
// install-ca runs as root (sudo), and the databases are in the invoking
// user's home — files that user, or malware running as that user,
// controls. certutil follows symbolic links and writes pkcs11.txt (with the
// directory's name in it) and key4.db where they point, so run as root it
// would let the user create root-owned files anywhere (/etc/cron.d). Run
// as the home's owner, it can only do what that user can do anyway; the
// databases need no privilege.
type nssUser struct {
	uid, gid uint32
	groups   []uint32
	name     string
	home     string
	// drop: run certutil with the user's credentials instead of ours.
	drop bool
}

// nssOwner is the user certutil runs as for the databases under home: the
// home's owner when we are root, else ourselves.
func nssOwner(home string) (nssUser, error) {
	fi, err := os.Stat(home)
	if err != nil {
		return nssUser{}, err
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return nssUser{}, errors.New("cannot tell who owns " + home)
	}
	euid := os.Geteuid()
	u := nssUser{uid: uint32(euid), gid: uint32(os.Getegid()), home: home}
	if euid != 0 || st.Uid == 0 {
		return u, nil
	}
	u.uid, u.gid, u.drop, u.name = st.Uid, st.Gid, true, strconv.FormatUint(uint64(st.Uid), 10)
	if pw, err := user.LookupId(u.name); err == nil {
		u.name = pw.Username
		if g, err := strconv.ParseUint(pw.Gid, 10, 32); err == nil {
			u.gid = uint32(g)
		}
		if ids, err := pw.GroupIds(); err == nil {
			for _, id := range ids {
				if g, err := strconv.ParseUint(id, 10, 32); err == nil {
					u.groups = append(u.groups, uint32(g))
				}
			}
		}
	}
	return u, nil
}

// nssFiles are the files certutil opens or creates in a database
// directory.
var nssFiles = []string{"cert9.db", "key4.db", "pkcs11.txt", "cert8.db", "key3.db", "secmod.db",
	"cert9.db-journal", "key4.db-journal", "cert9.db-wal", "key4.db-wal", "cert9.db-shm", "key4.db-shm"}

// checkNSSDir refuses a database directory certutil must not touch: a
// symbolic link, not owned by u, writable by others, or holding one of the
// NSS files as a symbolic link, a non-regular file or a file of another
// owner (a link planted to make certutil write elsewhere).
func checkNSSDir(dir string, u nssUser) error {
	fi, err := os.Lstat(dir)
	if err != nil {
		return err
	}
	if err := ownedRegular(fi, u, true); err != nil {
		return fmt.Errorf("%s %w", dir, err)
	}
	for _, name := range nssFiles {
		p := filepath.Join(dir, name)
		fi, err := os.Lstat(p)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return err
		}
		if err := ownedRegular(fi, u, false); err != nil {
			return fmt.Errorf("%s %w", p, err)
		}
	}
	return nil
}

func ownedRegular(fi fs.FileInfo, u nssUser, dir bool) error {
	switch {
	case fi.Mode()&fs.ModeSymlink != 0:
		return errors.New("is a symbolic link")
	case dir && !fi.IsDir():
		return errors.New("is not a directory")
	case !dir && !fi.Mode().IsRegular():
		return errors.New("is not a regular file")
	case dir && fi.Mode().Perm()&0o022 != 0:
		return fmt.Errorf("is writable by other users (mode %v; chmod go-w it)", fi.Mode().Perm())
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok || st.Uid != u.uid {
		return fmt.Errorf("is not owned by uid %d", u.uid)
	}
	return nil
}

// safeDBs returns the databases of dbs that pass checkNSSDir, noting the
// others.
func safeDBs(dbs []string, u nssUser, r *Result) []string {
	var out []string
	for _, db := range dbs {
		_, dir, _ := strings.Cut(db, ":")
		if err := checkNSSDir(dir, u); err != nil {
			r.note(fmt.Sprintf("skipped the NSS database %s: %v", db, err))
			continue
		}
		out = append(out, db)
	}
	return out
}

// certutil runs certutil as u with stdin (nil = none).
func (o Options) certutilAs(ctx context.Context, u nssUser, stdin []byte, certutil string, args ...string) ([]byte, error) {
	if o.Run != nil {
		return o.Run(ctx, certutil, args...)
	}
	cmd := exec.CommandContext(ctx, certutil, args...)
	cmd.Dir = "/"
	if stdin != nil {
		cmd.Stdin = bytes.NewReader(stdin)
	}
	if u.drop {
		if err := asUser(cmd, u); err != nil {
			return nil, err
		}
		env := []string{"HOME=" + u.home}
		for _, kv := range os.Environ() {
			if !strings.HasPrefix(kv, "HOME=") {
				env = append(env, kv)
			}
		}
		cmd.Env = env
	}
	return cmd.CombinedOutput()
}

// nssPrepare finds the databases to change and who to change them as.
func nssPrepare(o Options, r *Result) ([]string, nssUser) {
	home := o.home()
	dbs := nssDBs(home)
	if len(dbs) == 0 {
		return nil, nssUser{}
	}
	u, err := nssOwner(home)
	if err != nil {
		r.note(fmt.Sprintf("skipped the NSS databases %s: %v", strings.Join(dbs, ", "), err))
		return nil, nssUser{}
	}
	if dbs = safeDBs(dbs, u, r); len(dbs) > 0 && u.drop {
		r.note(fmt.Sprintf("certutil runs as %s (uid %d), the owner of %s, not as root", u.name, u.uid, home))
	}
	return dbs, u
}

func (o Options) certutil() (string, bool) {
	p, err := o.lookPath("certutil")
	return p, err == nil
}

func nssHas(ctx context.Context, o Options, u nssUser, certutil, db string, cert *x509.Certificate) bool {
	out, err := o.certutilAs(ctx, u, nil, certutil, "-L", "-d", db, "-n", nickname(cert), "-a")
	if err != nil {
		return false
	}
	c, err := parseFirstPEM(out)
	return err == nil && c.Equal(cert)
}

func nssInstall(ctx context.Context, cert *x509.Certificate, o Options, r *Result) error {
	dbs := nssDBs(o.home())
	if len(dbs) == 0 {
		return nil
	}
	certutil, ok := o.certutil()
	if !ok {
		r.note(fmt.Sprintf("certutil not found: the NSS databases (Firefox, Chromium) %s were not updated; install it (Debian/Ubuntu: libnss3-tools, Fedora: nss-tools, macOS: brew install nss) and run install-ca again", strings.Join(dbs, ", ")))
		return nil
	}
	dbs, u := nssPrepare(o, r)
	for _, db := range dbs {
		if nssHas(ctx, o, u, certutil, db, cert) {
			r.note("already in the NSS database " + db)
			continue
		}
		// The certificate comes on stdin: no temporary file the user
		// certutil runs as would have to be able to read.
		args := []string{"-A", "-d", db, "-t", "C,,", "-n", nickname(cert), "-a"}
		if out, err := o.certutilAs(ctx, u, certPEM(cert), certutil, args...); err != nil {
			return fmt.Errorf("%s %s: %w: %s", certutil, strings.Join(args, " "), err, strings.TrimSpace(string(out)))
		}
		r.ran(certutil, args...)
	}
	return nil
}

func nssUninstall(ctx context.Context, cert *x509.Certificate, o Options, r *Result) error {
	dbs := nssDBs(o.home())
	if len(dbs) == 0 {
		return nil
	}
	certutil, ok := o.certutil()
	if !ok {
		r.note("certutil not found: the NSS databases " + strings.Join(dbs, ", ") + " were not checked")
		return nil
	}
	dbs, u := nssPrepare(o, r)
	for _, db := range dbs {
		if !nssHas(ctx, o, u, certutil, db, cert) {
			continue
		}
		args := []string{"-D", "-d", db, "-n", nickname(cert)}
		if out, err := o.certutilAs(ctx, u, nil, certutil, args...); err != nil {
			return fmt.Errorf("%s %s: %w: %s", certutil, strings.Join(args, " "), err, strings.TrimSpace(string(out)))
		}
		r.ran(certutil, args...)
	}
	return nil
}

func (o Options) lookPath(name string) (string, error) {
	if o.LookPath != nil {
		return o.LookPath(name)
	}
	return exec.LookPath(name)
}

// nickname is the NSS nickname of cert.
func nickname(cert *x509.Certificate) string {
	sum := sha256.Sum256(cert.Raw)
	return "FLM Local CA " + hex.EncodeToString(sum[:8])
}
