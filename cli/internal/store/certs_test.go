package store

import (
	"bytes"
	"context"
	"encoding/pem"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/unjuno/flm/core/certs"
	"github.com/unjuno/flm/proxy/localca"
)

// localRecord makes a real certificate record (a local CA root) with a
// real private key.
func localRecord(t *testing.T, id string) certs.Record {
	t.Helper()
	certPEM, keyPEM, err := localca.NewRoot("storetest", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	rec, err := certs.FromPEM(id, certs.SourceLocalCA, certPEM, keyPEM, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	rec.Meta = map[string]string{"k": "v"}
	return rec
}

func sameRecord(t *testing.T, got, want certs.Record) {
	t.Helper()
	if got.ID != want.ID || got.Source != want.Source || got.Subject != want.Subject || got.Issuer != want.Issuer ||
		!slices.Equal(got.SANs, want.SANs) || !bytes.Equal(got.CertPEM, want.CertPEM) || !bytes.Equal(got.KeyPEM, want.KeyPEM) ||
		!got.NotBefore.Equal(want.NotBefore.Truncate(time.Millisecond)) || !got.NotAfter.Equal(want.NotAfter.Truncate(time.Millisecond)) ||
		got.Meta["k"] != want.Meta["k"] {
		t.Fatalf("got %+v\nwant %+v", got, want)
	}
}

func TestCertsStore(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	s := Certs{open(t, dir, Security)}

	if _, err := s.Get(ctx, "nope"); !errors.Is(err, certs.ErrNotFound) {
		t.Fatalf("Get unknown: %v", err)
	}
	if err := s.Delete(ctx, "nope"); !errors.Is(err, certs.ErrNotFound) {
		t.Fatalf("Delete unknown: %v", err)
	}
	if err := s.Put(ctx, certs.Record{ID: "x"}); err == nil {
		t.Fatal("Put without certificate and key accepted")
	}

	root := localRecord(t, certs.LocalCARootID)
	if err := s.Put(ctx, root); err != nil {
		t.Fatal(err)
	}
	got, err := s.Get(ctx, certs.LocalCARootID)
	if err != nil {
		t.Fatal(err)
	}
	sameRecord(t, got, root)

	// Replace by id.
	other := localRecord(t, certs.LocalCARootID)
	if err := s.Put(ctx, other); err != nil {
		t.Fatal(err)
	}
	got, _ = s.Get(ctx, certs.LocalCARootID)
	sameRecord(t, got, other)

	// List is ordered by id, whatever the insertion order.
	for _, id := range []string{"acme:b.example", "local-ca:server", "acme:a.example"} {
		if err := s.Put(ctx, localRecord(t, id)); err != nil {
			t.Fatal(err)
		}
	}
	list, err := s.List(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, r := range list {
		ids = append(ids, r.ID)
	}
	if want := []string{"acme:a.example", "acme:b.example", "local-ca:root", "local-ca:server"}; !slices.Equal(ids, want) {
		t.Fatalf("List ids = %v, want %v", ids, want)
	}

	if err := s.Delete(ctx, "acme:b.example"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Get(ctx, "acme:b.example"); !errors.Is(err, certs.ErrNotFound) {
		t.Fatalf("Get after Delete: %v", err)
	}
	if list, _ := s.List(ctx); len(list) != 3 {
		t.Fatalf("List after Delete: %d records", len(list))
	}

	// Survives a reopen.
	s.DB.Close()
	s2 := Certs{open(t, dir, Security)}
	got, err = s2.Get(ctx, certs.LocalCARootID)
	if err != nil {
		t.Fatal(err)
	}
	sameRecord(t, got, other)
}

// TestCertKeysNeverPlaintextOnDisk: an attacker reading the data dir's
// files (security.db, its WAL, anything else) finds no private key.
func TestCertKeysNeverPlaintextOnDisk(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	d := open(t, dir, Security)
	s := Certs{d}
	rec := localRecord(t, certs.LocalCARootID)
	if err := s.Put(ctx, rec); err != nil {
		t.Fatal(err)
	}
	acc := certs.Account{Directory: "https://acme.test/dir", Email: "me@example.net", KeyPEM: localRecord(t, "x").KeyPEM, Registration: []byte(`{"status":"valid"}`)}
	if err := s.PutAccount(ctx, acc); err != nil {
		t.Fatal(err)
	}
	if got, err := s.GetAccount(ctx, acc.Directory, acc.Email); err != nil || !bytes.Equal(got.KeyPEM, acc.KeyPEM) {
		t.Fatalf("GetAccount: %v", err)
	}
	var needles [][]byte
	for _, k := range [][]byte{rec.KeyPEM, acc.KeyPEM} {
		b, _ := pem.Decode(k)
		body := strings.Split(strings.TrimSpace(string(k)), "\n")[1] // first base64 line
		needles = append(needles, k, b.Bytes, []byte(body))
	}
	needles = append(needles, []byte("PRIVATE KEY"))
	check := func(when string) {
		files := 0
		_ = filepath.WalkDir(dir, func(p string, e os.DirEntry, err error) error {
			if err != nil || e.IsDir() {
				return err
			}
			files++
			data, _ := os.ReadFile(p)
			for _, n := range needles {
				if bytes.Contains(data, n) {
					t.Errorf("%s: %s holds a private key in plaintext (%.20q)", when, p, n)
				}
			}
			return nil
		})
		if files == 0 {
			t.Fatalf("%s: no files to scan", when)
		}
	}
	check("open") // WAL and shm included
	d.Close()
	check("closed")
}
