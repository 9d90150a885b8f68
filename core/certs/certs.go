// Package certs holds FLM's TLS certificates as data (PRODUCT.md §7): the
// record a store keeps for each certificate (ACME-issued, local CA, dev),
// the ACME account, the ports that persist them, and the rules that do not
// depend on how a certificate is obtained: when to renew, and what a user
// may see of a certificate (never its key).
//
// Security notes: Record.KeyPEM and Account.KeyPEM are private keys. They
// are only ever stored in security.db (encrypted at rest) and never
// printed, logged or marshalled: both types hide them from encoding/json,
// and Info carries no key.
package certs

import (
	"context"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"time"
)

// Source says where a certificate comes from.
type Source string

// The sources.
const (
	SourceACME    Source = "acme"
	SourceLocalCA Source = "local-ca"
	SourceDev     Source = "dev"
)

// Well-known record ids. ACME certificates are "acme:<domain>".
const (
	LocalCARootID   = "local-ca:root"
	LocalCAServerID = "local-ca:server"
)

// ACMEID is the record id of the ACME certificate for domain.
func ACMEID(domain string) string { return "acme:" + domain }

// ErrNotFound is returned (possibly wrapped) for an unknown id.
var ErrNotFound = errors.New("certificate not found")

// Record is a stored certificate with its private key.
type Record struct {
	ID        string    `json:"id"`
	Source    Source    `json:"source"`
	Subject   string    `json:"subject"`
	SANs      []string  `json:"sans"`
	Issuer    string    `json:"issuer"`
	NotBefore time.Time `json:"not_before"`
	NotAfter  time.Time `json:"not_after"`
	// CertPEM is the chain, leaf first.
	CertPEM []byte `json:"-"`
	// KeyPEM is the leaf's private key. Never printed or logged.
	KeyPEM []byte `json:"-"`
	// Meta is source-specific state (ACME: directory, certificate URL,
	// ARI window, last renewal error). Never holds a secret.
	Meta      map[string]string `json:"meta,omitempty"`
	UpdatedAt time.Time         `json:"updated_at"`
}

// Store persists certificate records. Implementations are safe for
// concurrent use and write each Put in one transaction.
type Store interface {
	// Get returns the record id or ErrNotFound.
	Get(ctx context.Context, id string) (Record, error)
	// Put inserts or replaces rec (by ID).
	Put(ctx context.Context, rec Record) error
	// List returns every record, ordered by id.
	List(ctx context.Context) ([]Record, error)
	// Delete removes id; an unknown id is ErrNotFound.
	Delete(ctx context.Context, id string) error
}

// Account is an ACME account: its key and the CA's registration.
type Account struct {
	Directory string `json:"directory"`
	Email     string `json:"email"`
	// KeyPEM is the account's private key. Never printed or logged.
	KeyPEM []byte `json:"-"`
	// Registration is the CA's account resource (JSON, from lego).
	Registration []byte    `json:"-"`
	CreatedAt    time.Time `json:"created_at"`
}

// AccountStore persists ACME accounts, one per directory and e-mail.
type AccountStore interface {
	// GetAccount returns the account or ErrNotFound.
	GetAccount(ctx context.Context, directory, email string) (Account, error)
	// PutAccount inserts or replaces the account.
	PutAccount(ctx context.Context, acc Account) error
}

// RenewBefore is PRODUCT.md §7's threshold: renew when less remains.
const RenewBefore = 30 * 24 * time.Hour

// Window is a renewal window a CA suggests (ACME Renewal Information,
// RFC 9773).
type Window struct {
	Start, End time.Time
}

// NeedsRenewal reports whether a certificate valid until notAfter should
// be renewed at now: when the CA's window (if any) has started, or when
// less than RenewBefore (or, for short-lived certificates, less than a
// third of lifetime) remains.
func NeedsRenewal(notBefore, notAfter, now time.Time, ari *Window) bool {
	if ari != nil && !ari.Start.IsZero() && !now.Before(ari.Start) {
		return true
	}
	before := RenewBefore
	if life := notAfter.Sub(notBefore); life > 0 && life/3 < before {
		before = life / 3
	}
	return notAfter.Sub(now) < before
}

// Info is what a user may see of a record: no key, no PEM.
type Info struct {
	ID        string    `json:"id"`
	Source    Source    `json:"source"`
	Subject   string    `json:"subject"`
	SANs      []string  `json:"sans"`
	Issuer    string    `json:"issuer"`
	NotBefore time.Time `json:"not_before"`
	NotAfter  time.Time `json:"not_after"`
	// Expired is true once NotAfter has passed (at the time Info was made).
	Expired bool `json:"expired"`
	// LastError is the last renewal or issuance failure, if any.
	LastError string    `json:"last_error,omitempty"`
	UpdatedAt time.Time `json:"updated_at"`
}

// MetaLastError is the Meta key holding the last failure.
const MetaLastError = "last_error"

// InfoOf describes r at now.
func InfoOf(r Record, now time.Time) Info {
	return Info{
		ID: r.ID, Source: r.Source, Subject: r.Subject, SANs: append([]string{}, r.SANs...), Issuer: r.Issuer,
		NotBefore: r.NotBefore, NotAfter: r.NotAfter, Expired: !now.Before(r.NotAfter),
		LastError: r.Meta[MetaLastError], UpdatedAt: r.UpdatedAt,
	}
}

// FromPEM fills a record's descriptive fields (Subject, SANs, Issuer,
// NotBefore, NotAfter) from the leaf of certPEM, and sets CertPEM and
// KeyPEM. It does not check that the key matches; crypto/tls does when the
// pair is loaded.
func FromPEM(id string, src Source, certPEM, keyPEM []byte, now time.Time) (Record, error) {
	block, _ := pem.Decode(certPEM)
	if block == nil || block.Type != "CERTIFICATE" {
		return Record{}, fmt.Errorf("certificate %s: no PEM certificate", id)
	}
	leaf, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		return Record{}, fmt.Errorf("certificate %s: %w", id, err)
	}
	sans := append([]string{}, leaf.DNSNames...)
	for _, ip := range leaf.IPAddresses {
		sans = append(sans, ip.String())
	}
	return Record{
		ID: id, Source: src, Subject: leaf.Subject.String(), SANs: sans, Issuer: leaf.Issuer.String(),
		NotBefore: leaf.NotBefore.UTC(), NotAfter: leaf.NotAfter.UTC(), CertPEM: certPEM, KeyPEM: keyPEM,
		UpdatedAt: now.UTC(),
	}, nil
}
