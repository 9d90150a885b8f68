package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/unjuno/flm/cli/internal/store"
	"github.com/unjuno/flm/core/apikey"
	"github.com/unjuno/flm/core/gateway"
)

var flmBin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "flm-bin-")
	if err != nil {
		panic(err)
	}
	flmBin = filepath.Join(dir, "flm")
	out, err := exec.Command("go", "build", "-o", flmBin, "github.com/unjuno/flm/cli/cmd/flm").CombinedOutput()
	if err != nil {
		fmt.Fprintf(os.Stderr, "build flm: %v\n%s", err, out)
		os.Exit(2)
	}
	code := m.Run()
	_ = os.RemoveAll(dir)
	os.Exit(code)
}

// flmProc runs the real binary, as a user would.
func flmProc(t *testing.T, dir string, args ...string) (stdout []byte, err error) {
	t.Helper()
	cmd := exec.Command(flmBin, append([]string{"--data-dir", dir}, args...)...)
	cmd.Env = hermeticEnviron()
	var errb bytes.Buffer
	cmd.Stderr = &errb
	out, err := cmd.Output()
	if err != nil {
		return out, fmt.Errorf("%w: %s", err, errb.String())
	}
	return out, nil
}

func TestTwoProcessesWriteAtOnce(t *testing.T) {
	dir := t.TempDir()
	const perProc = 15
	var wg sync.WaitGroup
	errs := make(chan error, 4*perProc)
	for p := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range perProc {
				args := []string{"api-keys", "create", "--label", fmt.Sprintf("p%d-%d", p, i)}
				if i%3 == 0 {
					args = []string{"config", "set", "engine.max_network_failures", fmt.Sprint(1 + i)}
				}
				if _, err := flmProc(t, dir, args...); err != nil {
					errs <- err
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Errorf("concurrent flm failed: %v", err)
	}
	var list keyList
	ok(t, dir, "api-keys", "list").data(t, &list)
	if want := 4 * (perProc - (perProc+2)/3); len(list.APIKeys) != want {
		t.Fatalf("%d keys stored, want %d", len(list.APIKeys), want)
	}
}

// Killing `flm api-keys create` at any moment never damages the data and
// never loses a key whose creation was reported.
func TestSIGKILLDuringCreate(t *testing.T) {
	dir := t.TempDir()
	if _, err := flmProc(t, dir, "check"); err != nil {
		t.Fatal(err)
	}
	t0 := time.Now()
	if _, err := flmProc(t, dir, "api-keys", "create", "--label", "warmup"); err != nil {
		t.Fatal(err)
	}
	run := time.Since(t0)
	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 7))
	var reported []issued
	killed := 0
	for i := range 50 {
		cmd := exec.Command(flmBin, "--data-dir", dir, "api-keys", "create", "--label", fmt.Sprintf("kill-%d", i))
		cmd.Env = hermeticEnviron()
		var out bytes.Buffer
		cmd.Stdout = &out
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		time.Sleep(time.Duration(rng.Int64N(int64(run * 3 / 2))))
		if cmd.Process.Signal(syscall.SIGKILL) == nil {
			killed++
		}
		_ = cmd.Wait()
		if out.Len() > 0 {
			var env struct{ Data issued }
			if err := json.Unmarshal(out.Bytes(), &env); err != nil {
				t.Fatalf("partial output %q: %v", out.String(), err)
			}
			reported = append(reported, env.Data)
		}
	}
	t.Logf("one create takes %v; %d of 50 runs were killed, %d reported a key", run, killed, len(reported))

	out, err := flmProc(t, dir, "check")
	if err != nil || !bytes.Contains(out, []byte(`"status":"ok"`)) {
		t.Fatalf("flm check after kills: %v\n%s", err, out)
	}
	d, err := store.Open(context.Background(), dir, store.Security)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	recs, err := (store.APIKeys{DB: d}).List(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	ring := gateway.NewKeyRing(recs)
	for _, k := range reported {
		rec, ok := ring.Verify(k.PlainKey)
		if !ok || rec.ID != k.ID {
			t.Errorf("key %s was reported created but does not verify: %v", k.ID, err)
		}
	}
}

func TestBackupRestoreCLI(t *testing.T) {
	dir := t.TempDir()
	a := createKey(t, dir, "kept")
	ok(t, dir, "config", "set", "proxy.port", "9000")
	var made struct {
		Backups []struct {
			Path string `json:"path"`
			Kind string `json:"kind"`
		} `json:"backups"`
		Total int `json:"total_backups"`
	}
	ok(t, dir, "security", "backup", "create").data(t, &made)
	if len(made.Backups) != 2 || made.Total != 2 {
		t.Fatalf("backup create = %+v", made)
	}
	secBackup := made.Backups[1].Path
	if made.Backups[1].Kind != "security" {
		t.Fatalf("second backup is %s", made.Backups[1].Kind)
	}
	b := createKey(t, dir, "after backup")
	var restored struct {
		PreviousStateBackup string `json:"previous_state_backup"`
	}
	ok(t, dir, "security", "backup", "restore", "--file", secBackup).data(t, &restored)
	var list keyList
	ok(t, dir, "api-keys", "list").data(t, &list)
	if len(list.APIKeys) != 1 || list.APIKeys[0].ID != a.ID {
		t.Fatalf("after restore: %+v", list)
	}
	// Nothing is lost: the replaced state was snapshotted and can come back.
	ok(t, dir, "security", "backup", "restore", "--file", restored.PreviousStateBackup)
	ok(t, dir, "api-keys", "list").data(t, &list)
	if len(list.APIKeys) != 2 || list.APIKeys[1].ID != b.ID {
		t.Fatalf("after restoring the safety snapshot: %+v", list)
	}

	var listed struct {
		Backups []json.RawMessage `json:"backups"`
	}
	ok(t, dir, "security", "backup", "list").data(t, &listed)
	if len(listed.Backups) < 3 {
		t.Fatalf("backup list = %d entries", len(listed.Backups))
	}
	for range 4 {
		ok(t, dir, "security", "backup", "create")
	}
	// Retention keeps the newest KeepBackups units of `backup create` (a
	// pair each) and, apart, the automatic units of the two restores above.
	ents, _ := os.ReadDir(filepath.Join(dir, "backups"))
	if want := 2*store.KeepBackups + 2*2; len(ents) != want {
		t.Fatalf("%d files in backups/, want %d", len(ents), want)
	}

	notBackup := filepath.Join(t.TempDir(), "notes.db")
	_ = os.WriteFile(notBackup, []byte("SQLite format 3\x00 but not really"), 0o600)
	fails(t, dir, 1, "INVALID_ARGUMENT", "security", "backup", "restore", "--file", notBackup)
	fails(t, dir, 1, "INVALID_ARGUMENT", "security", "backup", "restore", "--file", filepath.Join(dir, "config.db-nope"))
	fails(t, dir, 1, "INVALID_ARGUMENT", "security", "backup", "restore", "--file", dir)
}

func TestReadOnlyAfterFailedMigration(t *testing.T) {
	dir := t.TempDir()
	a := createKey(t, dir, "before")
	d, err := store.Open(context.Background(), dir, store.Security)
	if err != nil {
		t.Fatal(err)
	}
	var b struct {
		Backups []struct{ Path, Kind string }
	}
	ok(t, dir, "security", "backup", "create").data(t, &b)
	// A newer flm's schema: this binary must not write to it.
	if err := setUserVersion(d, 42); err != nil {
		t.Fatal(err)
	}
	d.Close()

	msg := fails(t, dir, 1, "DB_READ_ONLY", "api-keys", "create", "--label", "x")
	if !strings.Contains(msg, "backup restore") {
		t.Fatalf("no recovery advice: %s", msg)
	}
	var list keyList
	ok(t, dir, "api-keys", "list").data(t, &list)
	if len(list.APIKeys) != 1 || list.APIKeys[0].ID != a.ID {
		t.Fatalf("reads in read-only mode: %+v", list)
	}
	if r := flm(t, dir, "check"); r.code != 1 || !strings.Contains(r.stdout, "read-only") {
		t.Fatalf("check in read-only mode: %d %s", r.code, r.stdout)
	}
	ok(t, dir, "security", "backup", "restore", "--file", b.Backups[1].Path)
	createKey(t, dir, "after recovery")
	ok(t, dir, "check")
}

func setUserVersion(d *store.DB, v int) error {
	return d.ExecForTest(fmt.Sprintf("PRAGMA user_version = %d", v))
}

// No plaintext key ever reaches a file: not the DBs, their WAL, backups or
// logs.
func TestPlaintextKeysNeverOnDisk(t *testing.T) {
	dir := t.TempDir()
	var plains []string
	a := createKey(t, dir, "a")
	b := createKey(t, dir, "b")
	var rot issued
	ok(t, dir, "api-keys", "rotate", a.ID).data(t, &rot)
	ok(t, dir, "api-keys", "revoke", b.ID)
	ok(t, dir, "security", "backup", "create")
	for _, out := range [][]string{{"api-keys", "create", "--label", "proc"}} {
		o, err := flmProc(t, dir, out...)
		if err != nil {
			t.Fatal(err)
		}
		var env struct{ Data issued }
		_ = json.Unmarshal(o, &env)
		plains = append(plains, env.Data.PlainKey)
	}
	plains = append(plains, a.PlainKey, b.PlainKey, rot.PlainKey)
	// A proxy that served the keys (good, revoked, and one that never
	// existed) writes logs and audit rows; none may hold a key.
	h := startProxyProc(t, dir, "--port", fmt.Sprint(freePort(t)))
	unknown := "flm_" + strings.Repeat("Q", 43)
	plains = append(plains, unknown)
	for _, k := range []string{rot.PlainKey, b.PlainKey, unknown, plains[0]} {
		httpGet(t, h.URLs.Local+"/v1/models", k)
	}
	if _, err := flmProc(t, dir, "proxy", "stop", "--all"); err != nil {
		t.Fatal(err)
	}
	if logs, _ := os.ReadDir(filepath.Join(dir, "logs")); len(logs) == 0 {
		t.Fatal("the proxy wrote no log; the scan would prove nothing about logs")
	}
	sec, err := store.Open(context.Background(), dir, store.Security)
	if err != nil {
		t.Fatal(err)
	}
	n, _ := sec.Count(context.Background(), "audit_logs", "event_type = 'auth_failure'")
	sec.Close()
	if n != 1 {
		t.Fatalf("%d auth_failure audit rows; want the two failures collapsed into 1", n)
	}
	files := 0
	err = filepath.WalkDir(dir, func(p string, e fs.DirEntry, err error) error {
		if err != nil || e.IsDir() {
			return err
		}
		files++
		data, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		for _, k := range plains {
			if k == "" {
				t.Fatal("a create printed no key")
			}
			// The secret part alone, in case a prefix were ever stripped.
			if bytes.Contains(data, []byte(k[len(apikey.Prefix):])) {
				t.Errorf("%s contains plaintext key %s…", p, k[:8])
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if files < 4 {
		t.Fatalf("scanned only %d files", files)
	}
	t.Logf("scanned %d files for %d keys", files, len(plains))
}
