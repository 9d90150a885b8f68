package store

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"time"

	"gorm.io/gorm"
	"gorm.io/gorm/clause"

	"github.com/unjuno/flm/core/apikey"
	"github.com/unjuno/flm/core/engine"
	"github.com/unjuno/flm/core/flmerr"
	"github.com/unjuno/flm/core/policy"
	"github.com/unjuno/flm/core/proxyctl"
	"github.com/unjuno/flm/core/settings"
)

// SecurityImport is the security.db part of `flm migrate legacy apply`.
type SecurityImport struct {
	// Keys are inserted: a duplicate id or hash fails the whole import.
	Keys []apikey.Record
	// PolicyJSON replaces the policy; nil keeps the stored one. The caller
	// validated it.
	PolicyJSON []byte
	// PolicyBefore, when set, is the document the caller saw: if the
	// stored one differs (another process changed it since), the import
	// fails rather than overwrite that change.
	PolicyBefore *string
}

// ImportSecurity writes imp into security.db in ONE transaction: either
// all of it is stored or none.
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
		if imp.PolicyJSON == nil {
			return nil
		}
		if imp.PolicyBefore != nil {
			var rows []policyRow
			if err := tx.Where("id = 'default'").Find(&rows).Error; err != nil {
				return err
			}
			cur := policy.DefaultDocument
			if len(rows) > 0 {
				cur = rows[0].PolicyJSON
			}
			if cur != *imp.PolicyBefore {
				return flmerr.New(flmerr.InvalidArgument, "the security policy changed while the import ran; nothing was imported: retry")
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

// ConfigImport is the config.db part of a legacy import. It only adds.
type ConfigImport struct {
	// Settings are added where the key is not stored yet; a stored value
	// is kept (the caller lists it).
	Settings []settings.Value
	// Endpoints and Profiles are inserted: an id already in use fails the
	// whole import.
	Endpoints []engine.Endpoint
	Profiles  []Profile
}

// ImportConfig writes imp into config.db in ONE transaction.
func (d *DB) ImportConfig(ctx context.Context, imp ConfigImport, at time.Time) error {
	if d.Kind != Config {
		return flmerr.New(flmerr.Internal, "config import into %s", d.Kind)
	}
	return d.write(ctx, "import legacy configuration", func(tx *gorm.DB) error {
		for _, v := range imp.Settings {
			row := settingRow{Key: v.Key, Value: v.Value, UpdatedAt: ms(at)}
			if err := tx.Clauses(clause.OnConflict{Columns: []clause.Column{{Name: "key"}}, DoNothing: true}).Create(&row).Error; err != nil {
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
			b, err := ProfileJSON(p.Config)
			if err != nil {
				return err
			}
			row := profileRow{ID: p.ID, ConfigJSON: b, CreatedAt: ms(at)}
			if err := tx.Create(&row).Error; err != nil {
				return err
			}
		}
		return nil
	})
}

// ProfileJSON is the config_json ImportConfig stores for c.
func ProfileJSON(c proxyctl.Config) (string, error) {
	b, err := json.Marshal(c)
	return string(b), err
}

// SecurityUndo names exactly what one legacy import writes to
// security.db, so that an import that never committed can be undone
// without touching anything written since (revocations, audit rows,
// certificates, policy edits). It holds no secret: key ids, policy
// documents.
type SecurityUndo struct {
	// KeyIDs are the imported keys (ids no key had before the import).
	KeyIDs []string `json:"api_key_ids"`
	// Policy is set when the import replaces the policy.
	Policy *PolicySwap `json:"policy,omitempty"`
}

// PolicySwap is a policy replacement: Before is restored only while the
// stored document is still After, byte for byte (strings, not
// json.RawMessage, which encoding/json would re-indent).
type PolicySwap struct {
	Before string `json:"before"`
	After  string `json:"after"`
}

// ConfigUndo names what one legacy import adds to config.db.
type ConfigUndo struct {
	// Settings were not stored before the import; each is removed only
	// while it still holds the imported value.
	Settings map[string]string `json:"settings"`
	// Endpoints are removed (with their cached state) while their kind
	// and URL are still the imported ones.
	Endpoints []engine.Endpoint `json:"engine_endpoints"`
	// Profiles (id → config_json) are removed while unchanged.
	Profiles map[string]string `json:"proxy_profiles"`
}

// UndoResult is what an undo removed and what it left because another
// process changed it since.
type UndoResult struct {
	Removed []string `json:"removed"`
	Left    []string `json:"left"`
}

// UndoSecurityImport removes what u names, in ONE transaction: the
// imported keys (whatever happened to them since: the import never
// committed, so they never were the user's), and the previous policy
// back if the stored one is still the imported one. Running it twice is
// harmless.
func (d *DB) UndoSecurityImport(ctx context.Context, u SecurityUndo) (UndoResult, error) {
	var res UndoResult
	if d.Kind != Security {
		return res, flmerr.New(flmerr.Internal, "security undo on %s", d.Kind)
	}
	err := d.write(ctx, "undo legacy security import", func(tx *gorm.DB) error {
		res = UndoResult{}
		for _, id := range u.KeyIDs {
			r := tx.Where("id = ? AND legacy = 1", id).Delete(&apiKeyRow{})
			if r.Error != nil {
				return r.Error
			}
			if r.RowsAffected > 0 {
				res.Removed = append(res.Removed, "api key "+id)
			}
		}
		if u.Policy == nil {
			return nil
		}
		var rows []policyRow
		if err := tx.Where("id = 'default'").Find(&rows).Error; err != nil {
			return err
		}
		cur := ""
		if len(rows) > 0 {
			cur = rows[0].PolicyJSON
		}
		switch cur {
		case u.Policy.Before:
		case u.Policy.After:
			row := policyRow{ID: "default", PolicyJSON: u.Policy.Before, UpdatedAt: ms(time.Now())}
			if err := tx.Clauses(clause.OnConflict{UpdateAll: true}).Create(&row).Error; err != nil {
				return err
			}
			res.Removed = append(res.Removed, "the imported policy (the previous one is back)")
		default:
			res.Left = append(res.Left, "the policy, changed since the import: "+cur)
		}
		return nil
	})
	return res, err
}

// UndoConfigImport removes what u names from config.db, in ONE
// transaction, each row only while it still holds what the import wrote.
// Running it twice is harmless.
func (d *DB) UndoConfigImport(ctx context.Context, u ConfigUndo) (UndoResult, error) {
	var res UndoResult
	if d.Kind != Config {
		return res, flmerr.New(flmerr.Internal, "config undo on %s", d.Kind)
	}
	err := d.write(ctx, "undo legacy configuration import", func(tx *gorm.DB) error {
		res = UndoResult{}
		for _, k := range slices.Sorted(maps.Keys(u.Settings)) {
			var rows []settingRow
			if err := tx.Where("key = ?", k).Find(&rows).Error; err != nil {
				return err
			}
			switch {
			case len(rows) == 0:
			case rows[0].Value != u.Settings[k]:
				res.Left = append(res.Left, fmt.Sprintf("setting %s = %s (changed since the import)", k, rows[0].Value))
			default:
				if err := tx.Where("key = ? AND value = ?", k, u.Settings[k]).Delete(&settingRow{}).Error; err != nil {
					return err
				}
				res.Removed = append(res.Removed, "setting "+k)
			}
		}
		for _, ep := range u.Endpoints {
			var rows []endpointRow
			if err := tx.Where("id = ?", ep.ID).Find(&rows).Error; err != nil {
				return err
			}
			switch {
			case len(rows) == 0:
			case rows[0].Kind != string(ep.Kind) || rows[0].BaseURL != ep.BaseURL:
				res.Left = append(res.Left, fmt.Sprintf("engine %s (changed since the import)", ep.ID))
			default:
				if err := tx.Where("id = ?", ep.ID).Delete(&endpointRow{}).Error; err != nil {
					return err
				}
				if err := tx.Where("engine_id = ?", ep.ID).Delete(&cacheRow{}).Error; err != nil {
					return err
				}
				res.Removed = append(res.Removed, "engine "+ep.ID)
			}
		}
		for _, id := range slices.Sorted(maps.Keys(u.Profiles)) {
			var rows []profileRow
			if err := tx.Where("id = ?", id).Find(&rows).Error; err != nil {
				return err
			}
			switch {
			case len(rows) == 0:
			case rows[0].ConfigJSON != u.Profiles[id]:
				res.Left = append(res.Left, fmt.Sprintf("proxy profile %s (changed since the import)", id))
			default:
				if err := tx.Where("id = ?", id).Delete(&profileRow{}).Error; err != nil {
					return err
				}
				res.Removed = append(res.Removed, "proxy profile "+id)
			}
		}
		return nil
	})
	return res, err
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
