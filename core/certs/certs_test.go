package certs

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"math/big"
	"net"
	"strings"
	"testing"
	"time"
)

var t0 = time.Date(2026, 12, 2, 12, 0, 0, 0, time.UTC)

func TestNeedsRenewal(t *testing.T) {
	day := 24 * time.Hour
	for _, c := range []struct {
		name                string
		notBefore, notAfter time.Time
		now                 time.Time
		ari                 *Window
		want                bool
	}{
		{"90-day cert, 60 days left", t0.Add(-30 * day), t0.Add(60 * day), t0, nil, false},
		{"90-day cert, 31 days left", t0.Add(-59 * day), t0.Add(31 * day), t0, nil, false},
		{"90-day cert, 29 days left", t0.Add(-61 * day), t0.Add(29 * day), t0, nil, true},
		{"expired", t0.Add(-91 * day), t0.Add(-day), t0, nil, true},
		{"6-day cert, 3 days left", t0.Add(-3 * day), t0.Add(3 * day), t0, nil, false},
		{"6-day cert, 1 day left", t0.Add(-5 * day), t0.Add(day), t0, nil, true},
		{"ARI window started", t0.Add(-30 * day), t0.Add(60 * day), t0, &Window{Start: t0.Add(-time.Hour), End: t0.Add(day)}, true},
		{"ARI window later", t0.Add(-30 * day), t0.Add(60 * day), t0, &Window{Start: t0.Add(day), End: t0.Add(2 * day)}, false},
		{"ARI window later but 29 days left", t0.Add(-61 * day), t0.Add(29 * day), t0, &Window{Start: t0.Add(day)}, true},
		{"zero ARI window ignored", t0.Add(-30 * day), t0.Add(60 * day), t0, &Window{}, false},
	} {
		if got := NeedsRenewal(c.notBefore, c.notAfter, c.now, c.ari); got != c.want {
			t.Errorf("%s: NeedsRenewal = %v, want %v", c.name, got, c.want)
		}
	}
}

func selfSigned(t *testing.T, notAfter time.Time) (certPEM, keyPEM []byte) {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tpl := &x509.Certificate{
		SerialNumber: big.NewInt(7), Subject: pkix.Name{CommonName: "flm test"},
		NotBefore: t0.Add(-time.Hour), NotAfter: notAfter,
		DNSNames: []string{"localhost", "llm.example.net"}, IPAddresses: []net.IP{net.ParseIP("127.0.0.1"), net.ParseIP("::1")},
	}
	der, err := x509.CreateCertificate(rand.Reader, tpl, tpl, &k.PublicKey, k)
	if err != nil {
		t.Fatal(err)
	}
	kd, err := x509.MarshalECPrivateKey(k)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kd})
}

func TestFromPEMAndInfo(t *testing.T) {
	certPEM, keyPEM := selfSigned(t, t0.Add(90*24*time.Hour))
	r, err := FromPEM(ACMEID("llm.example.net"), SourceACME, certPEM, keyPEM, t0)
	if err != nil {
		t.Fatal(err)
	}
	if r.ID != "acme:llm.example.net" || r.Subject != "CN=flm test" || r.Issuer != "CN=flm test" ||
		strings.Join(r.SANs, ",") != "localhost,llm.example.net,127.0.0.1,::1" || !r.NotAfter.Equal(t0.Add(90*24*time.Hour)) {
		t.Fatalf("record = %+v", r)
	}
	r.Meta = map[string]string{MetaLastError: "CA said no"}
	info := InfoOf(r, t0)
	if info.Expired || info.LastError != "CA said no" || len(info.SANs) != 4 {
		t.Fatalf("info = %+v", info)
	}
	if !InfoOf(r, t0.Add(91*24*time.Hour)).Expired {
		t.Fatal("an expired certificate is not shown as expired")
	}
	// Neither the record nor its Info ever marshals a key or a PEM.
	for _, v := range []any{r, info} {
		b, err := json.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		if strings.Contains(string(b), "PRIVATE KEY") || strings.Contains(string(b), "BEGIN CERTIFICATE") {
			t.Fatalf("marshalled a secret: %s", b)
		}
	}
	if b, _ := json.Marshal(Account{Directory: "d", KeyPEM: keyPEM, Registration: []byte(`{"x":1}`)}); strings.Contains(string(b), "PRIVATE") || strings.Contains(string(b), `"x"`) {
		t.Fatalf("account marshals its key: %s", b)
	}
	// SANs is [] (not null) when a certificate has none.
	if b, _ := json.Marshal(InfoOf(Record{ID: "x"}, t0)); !strings.Contains(string(b), `"sans":[]`) {
		t.Fatalf("empty SANs = %s", b)
	}
}

func TestFromPEMRefusesGarbage(t *testing.T) {
	for _, in := range [][]byte{nil, []byte("not pem"), pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: []byte("junk")}),
		pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: []byte("k")})} {
		if _, err := FromPEM("x", SourceDev, in, []byte("k"), t0); err == nil {
			t.Errorf("FromPEM(%q) accepted", in)
		}
	}
}
