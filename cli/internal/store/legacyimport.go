package store

import (
	"context"
	"encoding/json"
	"time"

	"gorm.io/gorm"
	"gorm.io/gorm/clause"

	"github.com/unjuno/flm/core/apikey"
	"github.com/unjuno/flm/core/engine"
	"github.com/unjuno/flm/core/flmerr"
	"github.com/unjuno/flm/core/proxyctl"
	"github.com/unjuno/flm/core/settings"
)

// Imported security data of `flm migrate legacy apply`, written to
// security.db in one transaction: every key is inserted (a duplicate id or
// hash fails the whole import) and the policy replaced.
type SecurityImport struct {
	Keys       []apikey.Record
	PolicyJSON []byte
}

// ImportSecurity writes imp into security.db in ONE transaction: either
// all of it is stored or none. The caller validated the policy.
func (d *DB) ImportSecurity(ctx context.Context, imp SecurityImport, at time.Time) error {
	if d.Kind != Security {
		return flmerr.New(flmerr.Internal, "security import into %s", d.Kind)
	}
	return d.write(ctx, "import legacy security data", func(tx *gorm.DB) error {
		for _, rec := range imp.Keys {
			row := keyRow(rec)
			if err := tx.Create(&row).Error; err != nil {
				return err
			}
		}
		row := policyRow{ID: "default", PolicyJSON: string(imp.PolicyJSON), UpdatedAt: ms(at)}
		return tx.Clauses(clause.OnConflict{UpdateAll: true}).Create(&row).Error
	})
}

// Profile is a stored proxy profile (proxy_profiles).
type Profile struct {
	ID     string
	Config proxyctl.Config
}

// ConfigImport is the config.db part of a legacy import.
type ConfigImport struct {
	Settings  []settings.Value
	Endpoints []engine.Endpoint
	Profiles  []Profile
}

// ImportConfig writes imp into config.db in ONE transaction. Settings and
// profiles replace rows of the same key/id; an endpoint id already in use
// fails the whole import.
func (d *DB) ImportConfig(ctx context.Context, imp ConfigImport, at time.Time) error {
	if d.Kind != Config {
		return flmerr.New(flmerr.Internal, "config import into %s", d.Kind)
	}
	return d.write(ctx, "import legacy configuration", func(tx *gorm.DB) error {
		for _, v := range imp.Settings {
			row := settingRow{Key: v.Key, Value: v.Value, UpdatedAt: ms(at)}
			if err := tx.Clauses(clause.OnConflict{Columns: []clause.Column{{Name: "key"}}, DoUpdates: clause.AssignmentColumns([]string{"value", "updated_at"})}).Create(&row).Error; err != nil {
				return err
			}
		}
		for _, ep := range imp.Endpoints {
			row := endpointRow{ID: ep.ID, Kind: string(ep.Kind), BaseURL: ep.BaseURL, APIKeyEnv: ep.APIKeyEnv, CreatedAt: ms(at)}
			if err := tx.Create(&row).Error; err != nil {
				return err
			}
		}
		for _, p := range imp.Profiles {
			b, err := json.Marshal(p.Config)
			if err != nil {
				return err
			}
			row := profileRow{ID: p.ID, ConfigJSON: string(b), CreatedAt: ms(at)}
			if err := tx.Clauses(clause.OnConflict{UpdateAll: true}).Create(&row).Error; err != nil {
				return err
			}
		}
		return nil
	})
}

// Profiles returns the stored proxy profiles, by id. Rows whose JSON does
// not parse are skipped.
func (d *DB) Profiles(ctx context.Context) ([]Profile, error) {
	var rows []profileRow
	if err := d.read(ctx, "list proxy profiles", func(tx *gorm.DB) error { return tx.Order("id").Find(&rows).Error }); err != nil {
		return nil, err
	}
	out := make([]Profile, 0, len(rows))
	for _, r := range rows {
		var c proxyctl.Config
		if json.Unmarshal([]byte(r.ConfigJSON), &c) == nil {
			out = append(out, Profile{ID: r.ID, Config: c})
		}
	}
	return out, nil
}
