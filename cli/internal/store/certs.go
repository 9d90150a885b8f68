package store

import (
	"context"
	"encoding/json"
	"fmt"

	"gorm.io/gorm"
	"gorm.io/gorm/clause"

	"github.com/unjuno/flm/core/certs"
	"github.com/unjuno/flm/core/flmerr"
)

// Certs keeps certificates and ACME accounts in security.db (migration 3):
// certs.Store and certs.AccountStore. Keys are only ever stored here,
// encrypted at rest with the rest of security.db.
type Certs struct{ DB *DB }

var (
	_ certs.Store        = Certs{}
	_ certs.AccountStore = Certs{}
)

type certRow struct {
	ID        string `gorm:"primaryKey"`
	Source    string
	Subject   string
	SANs      string `gorm:"column:sans"`
	Issuer    string
	CertPEM   string `gorm:"column:cert_pem"`
	KeyPEM    string `gorm:"column:key_pem"`
	NotBefore int64  `gorm:"column:not_before"`
	NotAfter  int64  `gorm:"column:not_after"`
	Meta      string
	UpdatedAt int64 `gorm:"autoUpdateTime:false"`
}

func (certRow) TableName() string { return "certificates" }

func (r certRow) record() (certs.Record, error) {
	rec := certs.Record{
		ID: r.ID, Source: certs.Source(r.Source), Subject: r.Subject, Issuer: r.Issuer,
		CertPEM: []byte(r.CertPEM), KeyPEM: []byte(r.KeyPEM),
		NotBefore: fromMS(r.NotBefore), NotAfter: fromMS(r.NotAfter), UpdatedAt: fromMS(r.UpdatedAt),
	}
	if err := json.Unmarshal([]byte(r.SANs), &rec.SANs); err != nil {
		return certs.Record{}, flmerr.Wrap(err, flmerr.DBError, "certificate %s: damaged sans", r.ID)
	}
	if err := json.Unmarshal([]byte(r.Meta), &rec.Meta); err != nil {
		return certs.Record{}, flmerr.Wrap(err, flmerr.DBError, "certificate %s: damaged meta", r.ID)
	}
	return rec, nil
}

// Get returns the certificate id or certs.ErrNotFound.
func (s Certs) Get(ctx context.Context, id string) (certs.Record, error) {
	var rows []certRow
	if err := s.DB.read(ctx, "read certificate", func(tx *gorm.DB) error {
		return tx.Where("id = ?", id).Limit(1).Find(&rows).Error
	}); err != nil {
		return certs.Record{}, err
	}
	if len(rows) == 0 {
		return certs.Record{}, fmt.Errorf("%w: %s", certs.ErrNotFound, id)
	}
	return rows[0].record()
}

// Put inserts or replaces rec in one statement.
func (s Certs) Put(ctx context.Context, rec certs.Record) error {
	if rec.ID == "" || len(rec.CertPEM) == 0 || len(rec.KeyPEM) == 0 {
		return flmerr.New(flmerr.InvalidArgument, "a certificate needs an id, a certificate and a key")
	}
	sans := rec.SANs
	if sans == nil {
		sans = []string{}
	}
	meta := rec.Meta
	if meta == nil {
		meta = map[string]string{}
	}
	sj, _ := json.Marshal(sans)
	mj, _ := json.Marshal(meta)
	row := certRow{
		ID: rec.ID, Source: string(rec.Source), Subject: rec.Subject, SANs: string(sj), Issuer: rec.Issuer,
		CertPEM: string(rec.CertPEM), KeyPEM: string(rec.KeyPEM), NotBefore: ms(rec.NotBefore), NotAfter: ms(rec.NotAfter),
		Meta: string(mj), UpdatedAt: ms(rec.UpdatedAt),
	}
	return s.DB.write(ctx, "store certificate", func(tx *gorm.DB) error {
		return tx.Clauses(clause.OnConflict{UpdateAll: true}).Create(&row).Error
	})
}

// List returns every certificate ordered by id.
func (s Certs) List(ctx context.Context) ([]certs.Record, error) {
	var rows []certRow
	if err := s.DB.read(ctx, "list certificates", func(tx *gorm.DB) error {
		return tx.Order("id").Find(&rows).Error
	}); err != nil {
		return nil, err
	}
	out := make([]certs.Record, 0, len(rows))
	for _, r := range rows {
		rec, err := r.record()
		if err != nil {
			return nil, err
		}
		out = append(out, rec)
	}
	return out, nil
}

// Delete removes id (certs.ErrNotFound if unknown).
func (s Certs) Delete(ctx context.Context, id string) error {
	err := s.DB.write(ctx, "delete certificate", func(tx *gorm.DB) error {
		res := tx.Where("id = ?", id).Delete(&certRow{})
		if res.Error == nil && res.RowsAffected == 0 {
			return errSentinel{fmt.Errorf("%w: %s", certs.ErrNotFound, id)}
		}
		return res.Error
	})
	return unwrapSentinel(err)
}

type accountRow struct {
	Directory    string `gorm:"primaryKey"`
	Email        string `gorm:"primaryKey"`
	KeyPEM       string `gorm:"column:key_pem"`
	Registration string
	CreatedAt    int64 `gorm:"autoCreateTime:false"`
}

func (accountRow) TableName() string { return "acme_accounts" }

// GetAccount returns the ACME account or certs.ErrNotFound.
func (s Certs) GetAccount(ctx context.Context, directory, email string) (certs.Account, error) {
	var rows []accountRow
	if err := s.DB.read(ctx, "read acme account", func(tx *gorm.DB) error {
		return tx.Where("directory = ? AND email = ?", directory, email).Limit(1).Find(&rows).Error
	}); err != nil {
		return certs.Account{}, err
	}
	if len(rows) == 0 {
		return certs.Account{}, fmt.Errorf("%w: acme account %s at %s", certs.ErrNotFound, email, directory)
	}
	row := rows[0]
	return certs.Account{Directory: row.Directory, Email: row.Email, KeyPEM: []byte(row.KeyPEM),
		Registration: []byte(row.Registration), CreatedAt: fromMS(row.CreatedAt)}, nil
}

// PutAccount inserts or replaces the account.
func (s Certs) PutAccount(ctx context.Context, acc certs.Account) error {
	if acc.Directory == "" || len(acc.KeyPEM) == 0 {
		return flmerr.New(flmerr.InvalidArgument, "an acme account needs a directory and a key")
	}
	row := accountRow{Directory: acc.Directory, Email: acc.Email, KeyPEM: string(acc.KeyPEM),
		Registration: string(acc.Registration), CreatedAt: ms(acc.CreatedAt)}
	return s.DB.write(ctx, "store acme account", func(tx *gorm.DB) error {
		return tx.Clauses(clause.OnConflict{UpdateAll: true}).Create(&row).Error
	})
}
