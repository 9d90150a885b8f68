package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"gorm.io/gorm"
	"gorm.io/gorm/clause"

	"github.com/unjuno/flm/core/apikey"
	"github.com/unjuno/flm/core/flmerr"
	"github.com/unjuno/flm/core/policy"
	"github.com/unjuno/flm/core/settings"
)

func ms(t time.Time) int64 { return t.UnixMilli() }

func fromMS(v int64) time.Time { return time.UnixMilli(v).UTC() }

// apiKeyRow is a row of security.db api_keys.
type apiKeyRow struct {
	ID        string `gorm:"primaryKey"`
	Label     string
	Hash      string
	CreatedAt int64 `gorm:"autoCreateTime:false"`
	RevokedAt *int64
	// Models is a JSON array of scopes; NULL = every model (migration 2).
	Models    *string `gorm:"column:models"`
	RPM       int     `gorm:"column:rpm"`
	ExpiresAt *int64  `gorm:"column:expires_at"`
	// Legacy: 1 = imported from the prototype (migration 3).
	Legacy bool `gorm:"column:legacy"`
}

func (apiKeyRow) TableName() string { return "api_keys" }

// record maps a row. A models value that is not a non-empty JSON array of
// strings is an error, never "every model": a damaged scope must not
// widen a key.
func (r apiKeyRow) record() (apikey.Record, error) {
	rec := apikey.Record{ID: r.ID, Label: r.Label, Hash: r.Hash, CreatedAt: fromMS(r.CreatedAt), RPM: r.RPM, Legacy: r.Legacy}
	if r.RevokedAt != nil {
		t := fromMS(*r.RevokedAt)
		rec.RevokedAt = &t
	}
	if r.ExpiresAt != nil {
		t := fromMS(*r.ExpiresAt)
		rec.ExpiresAt = &t
	}
	if r.Models != nil {
		if err := json.Unmarshal([]byte(*r.Models), &rec.Models); err != nil || len(rec.Models) == 0 {
			return apikey.Record{}, flmerr.New(flmerr.DBError, "api key %s: its stored model scope is unreadable; revoke it (`flm api-keys revoke %s`) and create a new one", r.ID, r.ID)
		}
	}
	return rec, nil
}

func keyRow(rec apikey.Record) apiKeyRow {
	row := apiKeyRow{ID: rec.ID, Label: rec.Label, Hash: rec.Hash, CreatedAt: ms(rec.CreatedAt), RPM: rec.RPM, Legacy: rec.Legacy}
	if rec.RevokedAt != nil {
		v := ms(*rec.RevokedAt)
		row.RevokedAt = &v
	}
	if rec.ExpiresAt != nil {
		v := ms(*rec.ExpiresAt)
		row.ExpiresAt = &v
	}
	if len(rec.Models) > 0 {
		b, _ := json.Marshal(rec.Models) // []string always marshals
		v := string(b)
		row.Models = &v
	}
	return row
}

// APIKeys is the security.db implementation of apikey.Store.
type APIKeys struct{ DB *DB }

var _ apikey.Store = APIKeys{}

// Insert implements apikey.Store.
func (s APIKeys) Insert(ctx context.Context, rec apikey.Record) error {
	return s.DB.write(ctx, "insert api key", func(tx *gorm.DB) error {
		row := keyRow(rec)
		return tx.Create(&row).Error
	})
}

func (s APIKeys) one(ctx context.Context, op, col, val string) (apikey.Record, error) {
	var rows []apiKeyRow
	if err := s.DB.read(ctx, op, func(tx *gorm.DB) error {
		return tx.Where(col+" = ?", val).Limit(1).Find(&rows).Error
	}); err != nil {
		return apikey.Record{}, err
	}
	if len(rows) == 0 {
		return apikey.Record{}, apikey.ErrNotFound
	}
	return rows[0].record()
}

// Get implements apikey.Store.
func (s APIKeys) Get(ctx context.Context, id string) (apikey.Record, error) {
	return s.one(ctx, "read api key", "id", id)
}

// ByHash implements apikey.Store.
func (s APIKeys) ByHash(ctx context.Context, hash string) (apikey.Record, error) {
	return s.one(ctx, "look up api key", "hash", hash)
}

// List implements apikey.Store.
func (s APIKeys) List(ctx context.Context) ([]apikey.Record, error) {
	var rows []apiKeyRow
	if err := s.DB.read(ctx, "list api keys", func(tx *gorm.DB) error {
		return tx.Order("created_at, rowid").Find(&rows).Error
	}); err != nil {
		return nil, err
	}
	out := make([]apikey.Record, len(rows))
	for i, r := range rows {
		rec, err := r.record()
		if err != nil {
			return nil, err
		}
		out[i] = rec
	}
	return out, nil
}

// errSentinel carries a domain sentinel out of a transaction unclassified.
type errSentinel struct{ err error }

func (e errSentinel) Error() string { return e.err.Error() }
func (e errSentinel) Unwrap() error { return e.err }

// Revoke implements apikey.Store.
func (s APIKeys) Revoke(ctx context.Context, id string, at time.Time, next *apikey.Record) error {
	err := s.DB.write(ctx, "revoke api key", func(tx *gorm.DB) error {
		var rows []apiKeyRow
		if err := tx.Where("id = ?", id).Limit(1).Find(&rows).Error; err != nil {
			return err
		}
		switch {
		case len(rows) == 0:
			return errSentinel{apikey.ErrNotFound}
		case rows[0].RevokedAt != nil:
			return errSentinel{apikey.ErrRevoked}
		}
		if err := tx.Model(&apiKeyRow{}).Where("id = ? AND revoked_at IS NULL", id).Update("revoked_at", ms(at)).Error; err != nil {
			return err
		}
		if next != nil {
			row := keyRow(*next)
			return tx.Create(&row).Error
		}
		return nil
	})
	return unwrapSentinel(err)
}

// Update implements apikey.Store.
func (s APIKeys) Update(ctx context.Context, id string, edit func(*apikey.Record) error) (apikey.Record, error) {
	var out apikey.Record
	err := s.DB.write(ctx, "update api key", func(tx *gorm.DB) error {
		var rows []apiKeyRow
		if err := tx.Where("id = ?", id).Limit(1).Find(&rows).Error; err != nil {
			return err
		}
		switch {
		case len(rows) == 0:
			return errSentinel{apikey.ErrNotFound}
		case rows[0].RevokedAt != nil:
			return errSentinel{apikey.ErrRevoked}
		}
		rec, err := rows[0].record()
		if err != nil {
			return errSentinel{err}
		}
		if err := edit(&rec); err != nil {
			return errSentinel{err}
		}
		row := keyRow(rec)
		if err := tx.Model(&apiKeyRow{}).Where("id = ? AND revoked_at IS NULL", id).Updates(map[string]any{
			"label": row.Label, "models": row.Models, "rpm": row.RPM, "expires_at": row.ExpiresAt,
		}).Error; err != nil {
			return err
		}
		// Only the four mutable fields were stored; the rest is the row's.
		stored := rows[0]
		stored.Label, stored.Models, stored.RPM, stored.ExpiresAt = row.Label, row.Models, row.RPM, row.ExpiresAt
		out, err = stored.record()
		return err
	})
	return out, unwrapSentinel(err)
}

func unwrapSentinel(err error) error {
	var se errSentinel
	if errors.As(err, &se) {
		return se.err
	}
	return err
}

// Policy is the security.db implementation of policy.Store.
type Policy struct{ DB *DB }

var _ policy.Store = Policy{}

type policyRow struct {
	ID         string `gorm:"primaryKey"`
	PolicyJSON string
	UpdatedAt  int64 `gorm:"autoUpdateTime:false"`
}

func (policyRow) TableName() string { return "security_policies" }

// Get implements policy.Store.
func (s Policy) Get(ctx context.Context) ([]byte, time.Time, error) {
	var rows []policyRow
	if err := s.DB.read(ctx, "read policy", func(tx *gorm.DB) error {
		return tx.Where("id = 'default'").Find(&rows).Error
	}); err != nil {
		return nil, time.Time{}, err
	}
	if len(rows) == 0 {
		// Migration seeds the row, so it is missing only if someone deleted
		// it by hand; behave as a fresh install would (loopback-only binding
		// and key auth still protect it) and let `flm check` report it.
		return []byte(policy.DefaultDocument), time.Time{}, nil
	}
	return []byte(rows[0].PolicyJSON), fromMS(rows[0].UpdatedAt), nil
}

// Put implements policy.Store.
func (s Policy) Put(ctx context.Context, doc []byte, at time.Time) error {
	return s.DB.write(ctx, "save policy", func(tx *gorm.DB) error {
		row := policyRow{ID: "default", PolicyJSON: string(doc), UpdatedAt: ms(at)}
		return tx.Clauses(clause.OnConflict{UpdateAll: true}).Create(&row).Error
	})
}

// Settings is the config.db implementation of settings.Store.
type Settings struct{ DB *DB }

var _ settings.Store = Settings{}

type settingRow struct {
	Key       string `gorm:"primaryKey"`
	Value     string
	UpdatedAt int64 `gorm:"autoUpdateTime:false"`
}

func (settingRow) TableName() string { return "settings" }

// Get implements settings.Store.
func (s Settings) Get(ctx context.Context, key string) (settings.Value, error) {
	var rows []settingRow
	if err := s.DB.read(ctx, "read setting", func(tx *gorm.DB) error {
		return tx.Where("key = ?", key).Find(&rows).Error
	}); err != nil {
		return settings.Value{}, err
	}
	if len(rows) == 0 {
		return settings.Value{}, fmt.Errorf("%s: %w", key, settings.ErrNotFound)
	}
	return settings.Value{Key: rows[0].Key, Value: rows[0].Value, UpdatedAt: fromMS(rows[0].UpdatedAt)}, nil
}

// Set implements settings.Store.
func (s Settings) Set(ctx context.Context, v settings.Value) error {
	return s.DB.write(ctx, "save setting", func(tx *gorm.DB) error {
		row := settingRow{Key: v.Key, Value: v.Value, UpdatedAt: ms(v.UpdatedAt)}
		return tx.Clauses(clause.OnConflict{Columns: []clause.Column{{Name: "key"}}, DoUpdates: clause.AssignmentColumns([]string{"value", "updated_at"})}).Create(&row).Error
	})
}

// List implements settings.Store.
func (s Settings) List(ctx context.Context) ([]settings.Value, error) {
	var rows []settingRow
	if err := s.DB.read(ctx, "list settings", func(tx *gorm.DB) error {
		return tx.Order("key").Find(&rows).Error
	}); err != nil {
		return nil, err
	}
	out := make([]settings.Value, len(rows))
	for i, r := range rows {
		out[i] = settings.Value{Key: r.Key, Value: r.Value, UpdatedAt: fromMS(r.UpdatedAt)}
	}
	return out, nil
}
