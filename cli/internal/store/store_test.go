package store

import (
	"context"
	"crypto/rand"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/unjuno/flm/core/apikey"
	"github.com/unjuno/flm/core/apikey/apikeytest"
	"github.com/unjuno/flm/core/engine"
	"github.com/unjuno/flm/core/engine/enginetest"
	"github.com/unjuno/flm/core/flmerr"
	"github.com/unjuno/flm/core/gateway"
	"github.com/unjuno/flm/core/policy"
	"github.com/unjuno/flm/core/policy/policytest"
	"github.com/unjuno/flm/core/settings"
	"github.com/unjuno/flm/core/settings/settingstest"
	"github.com/unjuno/flm/proxy"
)

// open opens kind in dir with the key file as security.db's key source:
// hermetic, whatever keychain the machine running the tests has.
func open(t *testing.T, dir string, kind Kind) *DB {
	t.Helper()
	d, err := Open(context.Background(), dir, kind, WithKeys(KeyConfig{Mode: KeyFile}))
	if err != nil {
		t.Fatalf("Open(%s): %v", kind, err)
	}
	t.Cleanup(func() { _ = d.Close() })
	return d
}

func TestConformance(t *testing.T) {
	t.Run("APIKeys", func(t *testing.T) {
		apikeytest.Run(t, func(t *testing.T) apikey.Store { return APIKeys{open(t, t.TempDir(), Security)} })
	})
	t.Run("Policy", func(t *testing.T) {
		policytest.Run(t, func(t *testing.T) policy.Store { return Policy{open(t, t.TempDir(), Security)} })
	})
	t.Run("Settings", func(t *testing.T) {
		settingstest.Run(t, func(t *testing.T) settings.Store { return Settings{open(t, t.TempDir(), Config)} })
	})
}

func TestOpenCreatesRestrictedMigratedFiles(t *testing.T) {
	dir := t.TempDir()
	for _, k := range []Kind{Config, Security} {
		d := open(t, dir, k)
		if d.Version() != SchemaVersion(k) || d.ReadOnly() != nil {
			t.Fatalf("%s: version %d, read-only %v", k, d.Version(), d.ReadOnly())
		}
		if err := (Settings{d}).Set(context.Background(), settings.Value{Key: "x", Value: "y"}); k == Config && err != nil {
			t.Fatal(err)
		}
		for _, suffix := range []string{"", "-wal", "-shm"} {
			st, err := os.Stat(d.Path + suffix)
			if err != nil {
				continue
			}
			if st.Mode().Perm() != 0o600 {
				t.Errorf("%s%s has mode %v, want 0600", d.Path, suffix, st.Mode().Perm())
			}
		}
	}
	// Re-opening applies nothing twice.
	d := open(t, dir, Security)
	n, err := d.Count(context.Background(), "schema_migrations", "")
	if err != nil || n != int64(SchemaVersion(Security)) {
		t.Fatalf("schema_migrations rows = %d, %v", n, err)
	}
	doc, _, err := Policy{d}.Get(context.Background())
	if err != nil || string(doc) != policy.DefaultDocument {
		t.Fatalf("seeded policy = %s, %v", doc, err)
	}
}

func TestGarbageFileNamedNotPanicked(t *testing.T) {
	dir := t.TempDir()
	junk := make([]byte, 64<<10)
	_, _ = rand.Read(junk)
	path := filepath.Join(dir, "config.db")
	if err := os.WriteFile(path, junk, 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := Open(context.Background(), dir, Config)
	if !flmerr.Is(err, flmerr.DBError) || !strings.Contains(err.Error(), path) {
		t.Fatalf("Open(random bytes) = %v; want DB_ERROR naming %s", err, path)
	}
	got, _ := os.ReadFile(path)
	if string(got) != string(junk) {
		t.Fatal("Open modified the damaged file")
	}
	// The other DB kind in the wrong file (a plaintext security.db, as
	// flm wrote before it encrypted the file).
	dir2 := t.TempDir()
	plain, err := OpenUnencryptedForTest(context.Background(), dir2)
	if err != nil {
		t.Fatal(err)
	}
	plain.Close()
	if err := os.Rename(filepath.Join(dir2, "security.db"), filepath.Join(dir2, "config.db")); err != nil {
		t.Fatal(err)
	}
	if _, err := Open(context.Background(), dir2, Config); !flmerr.Is(err, flmerr.DBError) || !strings.Contains(err.Error(), "security database") {
		t.Fatalf("Open(security.db as config.db) = %v", err)
	}
}

func TestFailedMigrationOpensReadOnly(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	d := open(t, dir, Config)
	if _, err := (&settings.Service{Store: Settings{d}}).Set(ctx, settings.ProxyPort, "9000"); err != nil {
		t.Fatal(err)
	}
	// Pretend a newer flm migrated the file.
	if err := d.gdb.Exec("PRAGMA user_version = 99").Error; err != nil {
		t.Fatal(err)
	}
	d.Close()

	ro := open(t, dir, Config)
	if !flmerr.Is(ro.ReadOnly(), flmerr.DBReadOnly) || !strings.Contains(ro.ReadOnly().Error(), "backup restore") {
		t.Fatalf("ReadOnly() = %v; want DB_READ_ONLY with recovery advice", ro.ReadOnly())
	}
	svc := &settings.Service{Store: Settings{ro}}
	if v, err := svc.Get(ctx, settings.ProxyPort); err != nil || v.Value != "9000" {
		t.Fatalf("read in read-only mode = %+v, %v", v, err)
	}
	if _, err := svc.Set(ctx, settings.ProxyPort, "9001"); !flmerr.Is(err, flmerr.DBReadOnly) {
		t.Fatalf("write in read-only mode = %v, want DB_READ_ONLY", err)
	}

	// A migration step that fails (here: a table in the way) also ends read-only,
	// and leaves the file as it was.
	dir2 := t.TempDir()
	sd := open(t, dir2, Security)
	if err := sd.gdb.Exec("PRAGMA user_version = 0").Error; err != nil {
		t.Fatal(err)
	}
	sd.Close()
	again := open(t, dir2, Security)
	if !flmerr.Is(again.ReadOnly(), flmerr.DBReadOnly) || !strings.Contains(again.ReadOnly().Error(), "migration 1") {
		t.Fatalf("ReadOnly() = %v", again.ReadOnly())
	}
	if _, err := (&apikey.Service{Store: APIKeys{again}}).Create(ctx, "x"); !flmerr.Is(err, flmerr.DBReadOnly) {
		t.Fatalf("key creation on a read-only DB = %v", err)
	}
}

func TestBackupRestore(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	bdir := filepath.Join(dir, "backups")
	d := open(t, dir, Security)
	keys := &apikey.Service{Store: APIKeys{d}}
	a, err := keys.Create(ctx, "before backup")
	if err != nil {
		t.Fatal(err)
	}
	t0 := time.Date(2026, 11, 27, 10, 0, 0, 0, time.UTC)
	b, err := d.Snapshot(ctx, bdir, t0, "")
	if err != nil {
		t.Fatal(err)
	}
	if st, _ := os.Stat(b.Path); st.Mode().Perm() != 0o600 || b.Kind != Security || b.SchemaVersion != SchemaVersion(Security) {
		t.Fatalf("backup %+v mode %v", b, st.Mode().Perm())
	}
	after, _ := keys.Create(ctx, "after backup")
	if err := d.Restore(ctx, b); err != nil {
		t.Fatal(err)
	}
	verify := func(plain string) error {
		recs, err := keys.List(ctx)
		if err != nil {
			return err
		}
		if _, ok := gateway.NewKeyRing(recs).Verify(plain); !ok {
			return errors.New("invalid")
		}
		return nil
	}
	if err := verify(a.Plain); err != nil {
		t.Fatalf("key from the snapshot does not verify after restore: %v", err)
	}
	if err := verify(after.Plain); err == nil {
		t.Fatal("key created after the snapshot survived the restore")
	}
	// A second handle (another process) sees the restored contents too.
	other := open(t, dir, Security)
	if recs, _ := (APIKeys{other}).List(ctx); len(recs) != 1 {
		t.Fatalf("other connection sees %d keys, want 1", len(recs))
	}

	// Retention: newest 3 per kind.
	for i := 1; i <= 4; i++ {
		if _, err := d.Snapshot(ctx, bdir, t0.Add(time.Duration(i)*time.Minute), ""); err != nil {
			t.Fatal(err)
		}
	}
	cd := open(t, dir, Config)
	if _, err := cd.Snapshot(ctx, bdir, t0, ""); err != nil {
		t.Fatal(err)
	}
	list, err := ListBackups(ctx, bdir)
	if err != nil {
		t.Fatal(err)
	}
	var nsec, ncfg int
	for _, b := range list {
		switch b.Kind {
		case Security:
			nsec++
		case Config:
			ncfg++
		}
	}
	if nsec != KeepBackups || ncfg != 1 {
		t.Fatalf("kept %d security and %d config backups; want %d and 1", nsec, ncfg, KeepBackups)
	}

	// Not backups.
	junk := filepath.Join(dir, "junk.db")
	_ = os.WriteFile(junk, []byte("hello, not sqlite"), 0o600)
	if _, err := Inspect(ctx, junk); !flmerr.Is(err, flmerr.InvalidArgument) {
		t.Fatalf("Inspect(text file) = %v", err)
	}
	if _, err := Inspect(ctx, filepath.Join(dir, "missing.db")); !flmerr.Is(err, flmerr.InvalidArgument) {
		t.Fatalf("Inspect(missing) = %v", err)
	}
	if err := d.Restore(ctx, Backup{Path: junk, Kind: Config}); !flmerr.Is(err, flmerr.InvalidArgument) {
		t.Fatalf("Restore(config backup into security) = %v", err)
	}
	newer := list[0]
	newer.SchemaVersion = 99
	if err := d.Restore(ctx, newer); !flmerr.Is(err, flmerr.InvalidArgument) || !strings.Contains(err.Error(), "newer") {
		t.Fatalf("Restore(newer schema) = %v", err)
	}
}

func TestConcurrentWritersAcrossHandles(t *testing.T) {
	// Separate handles stand in for separate processes: each has its own
	// connection pool and file locks. The cli tests repeat this with real
	// processes.
	ctx := context.Background()
	dir := t.TempDir()
	open(t, dir, Security).Close()
	var wg sync.WaitGroup
	errs := make(chan error, 4)
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			d, err := Open(ctx, dir, Security, WithKeys(KeyConfig{Mode: KeyFile}))
			if err != nil {
				errs <- err
				return
			}
			defer d.Close()
			svc := &apikey.Service{Store: APIKeys{d}}
			for range 10 {
				if _, err := svc.Create(ctx, "c"); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if n, _ := open(t, dir, Security).Count(ctx, "api_keys", ""); n != 40 {
		t.Fatalf("%d keys stored, want 40", n)
	}
}

// The seed of migration 1 is frozen history; it must still equal the
// default policy core would write today.
func TestSeedIsDefaultPolicy(t *testing.T) {
	found := false
	for _, s := range migrations[Security][0].stmts {
		if strings.Contains(s, "INSERT INTO security_policies") {
			found = strings.Contains(s, "'"+policy.DefaultDocument+"'")
		}
	}
	if !found {
		t.Fatal("migration 1 does not seed policy.DefaultDocument")
	}
}

func TestEngineStoresConformance(t *testing.T) {
	enginetest.RunEndpointStore(t, func(t *testing.T) engine.EndpointStore { return Engines{open(t, t.TempDir(), Config)} })
	enginetest.RunStateCache(t, func(t *testing.T) engine.StateCache { return Engines{open(t, t.TempDir(), Config)} })
}

func TestHealthLogBounded(t *testing.T) {
	ctx := context.Background()
	d := open(t, t.TempDir(), Config)
	s := Engines{d}
	defer func(n int) { healthLogKeep = n }(healthLogKeep)
	healthLogKeep = 25
	for i := range healthLogKeep + 20 {
		if err := s.AppendHealth(ctx, "ollama", engine.Status{State: engine.RunningDegraded, LatencyMS: int64(i)}, time.UnixMilli(int64(i))); err != nil {
			t.Fatal(err)
		}
	}
	_ = s.AppendHealth(ctx, "vllm", engine.Status{State: engine.ErrorNetwork}, time.Now())
	if n, _ := d.Count(ctx, "engine_health_logs", "engine_id = 'ollama'"); n != int64(healthLogKeep) {
		t.Fatalf("%d rows kept, want %d", n, healthLogKeep)
	}
	if n, _ := d.Count(ctx, "engine_health_logs", "engine_id = 'vllm' AND error_rate = 1"); n != 1 {
		t.Fatalf("vllm rows = %d", n)
	}
}

func TestAuditRetention(t *testing.T) {
	ctx := context.Background()
	d := open(t, t.TempDir(), Security)
	a := Audit{d}
	old := proxy.AuditEvent{Type: "auth_failure", Severity: "medium", IP: "192.0.2.1", Endpoint: "/v1/models", Count: 1, At: time.Now().Add(-AuditRetention - time.Hour), Detail: "x"}
	if err := a.Audit(ctx, []proxy.AuditEvent{old}); err != nil {
		t.Fatal(err)
	}
	fresh := old
	fresh.At, fresh.Count = time.Now(), 3
	if err := a.Audit(ctx, []proxy.AuditEvent{fresh}); err != nil {
		t.Fatal(err)
	}
	if n, _ := d.Count(ctx, "audit_logs", ""); n != 1 {
		t.Fatalf("%d audit rows; the 90-day-old one must be gone", n)
	}
	if n, _ := d.Count(ctx, "audit_logs", "details = 'x (x3 within a minute)'"); n != 1 {
		t.Fatal("collapsed count not recorded")
	}
}
