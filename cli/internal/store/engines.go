package store

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"gorm.io/gorm"

	"github.com/unjuno/flm/core/engine"
)

// Engines is the config.db implementation of engine.EndpointStore,
// engine.StateCache and engine.HealthLog.
type Engines struct{ DB *DB }

var (
	_ engine.EndpointStore = Engines{}
	_ engine.StateCache    = Engines{}
	_ engine.HealthLog     = Engines{}
)

type endpointRow struct {
	ID        string `gorm:"primaryKey"`
	Kind      string
	BaseURL   string
	APIKeyEnv string
	CreatedAt int64 `gorm:"autoCreateTime:false"`
}

func (endpointRow) TableName() string { return "engine_endpoints" }

// ListEndpoints implements engine.EndpointStore, in insertion order.
func (s Engines) ListEndpoints(ctx context.Context) ([]engine.Endpoint, error) {
	var rows []endpointRow
	if err := s.DB.read(ctx, "list engines", func(tx *gorm.DB) error {
		return tx.Order("created_at, rowid").Find(&rows).Error
	}); err != nil {
		return nil, err
	}
	out := make([]engine.Endpoint, len(rows))
	for i, r := range rows {
		out[i] = engine.Endpoint{ID: r.ID, Kind: engine.Kind(r.Kind), BaseURL: r.BaseURL, APIKeyEnv: r.APIKeyEnv, UserAdded: true}
	}
	return out, nil
}

// AddEndpoint implements engine.EndpointStore.
func (s Engines) AddEndpoint(ctx context.Context, ep engine.Endpoint, at time.Time) error {
	return s.DB.write(ctx, "add engine", func(tx *gorm.DB) error {
		row := endpointRow{ID: ep.ID, Kind: string(ep.Kind), BaseURL: ep.BaseURL, APIKeyEnv: ep.APIKeyEnv, CreatedAt: ms(at)}
		return tx.Create(&row).Error
	})
}

// RemoveEndpoint implements engine.EndpointStore; the engine's cached
// state goes with it.
func (s Engines) RemoveEndpoint(ctx context.Context, id string) error {
	err := s.DB.write(ctx, "remove engine", func(tx *gorm.DB) error {
		res := tx.Where("id = ?", id).Delete(&endpointRow{})
		if res.Error != nil {
			return res.Error
		}
		if res.RowsAffected == 0 {
			return errSentinel{engine.ErrNotFound}
		}
		return tx.Where("engine_id = ?", id).Delete(&cacheRow{}).Error
	})
	return unwrapSentinel(err)
}

type cacheRow struct {
	EngineID  string `gorm:"primaryKey"`
	StateJSON string
	CachedAt  int64
}

func (cacheRow) TableName() string { return "engines_cache" }

// LoadStates implements engine.StateCache. Rows that do not decode (written
// by another version) are skipped: they are only a cache.
func (s Engines) LoadStates(ctx context.Context) (map[string]engine.CachedEntry, error) {
	var rows []cacheRow
	if err := s.DB.read(ctx, "read engine cache", func(tx *gorm.DB) error { return tx.Find(&rows).Error }); err != nil {
		return nil, err
	}
	out := make(map[string]engine.CachedEntry, len(rows))
	for _, r := range rows {
		var c engine.Cached
		if json.Unmarshal([]byte(r.StateJSON), &c) == nil {
			out[r.EngineID] = engine.CachedEntry{Cached: c, At: fromMS(r.CachedAt)}
		}
	}
	return out, nil
}

// SaveState implements engine.StateCache. In read-only mode the cache is
// not written, and that is not an error: detection still works.
func (s Engines) SaveState(ctx context.Context, id string, c engine.Cached, at time.Time) error {
	if s.DB.readOnly != nil {
		return nil
	}
	b, err := json.Marshal(c)
	if err != nil {
		return fmt.Errorf("encode engine state: %w", err)
	}
	return s.DB.write(ctx, "save engine cache", func(tx *gorm.DB) error {
		return tx.Save(&cacheRow{EngineID: id, StateJSON: string(b), CachedAt: ms(at)}).Error
	})
}

// healthLogKeep bounds engine_health_logs per engine (a variable so tests
// can exercise the bound quickly).
var healthLogKeep = 1000

// AppendHealth implements engine.HealthLog, keeping the newest
// healthLogKeep rows per engine.
func (s Engines) AppendHealth(ctx context.Context, id string, st engine.Status, at time.Time) error {
	if s.DB.readOnly != nil {
		return nil
	}
	return s.DB.write(ctx, "append health log", func(tx *gorm.DB) error {
		if err := tx.Exec(`INSERT INTO engine_health_logs (engine_id, state, latency_ms, error_rate, created_at) VALUES (?, ?, ?, ?, ?)`,
			id, string(st.State), st.LatencyMS, engine.ErrorRate(st.State), ms(at)).Error; err != nil {
			return err
		}
		return tx.Exec(`DELETE FROM engine_health_logs WHERE engine_id = ? AND id NOT IN
			(SELECT id FROM engine_health_logs WHERE engine_id = ? ORDER BY id DESC LIMIT ?)`, id, id, healthLogKeep).Error
	})
}
