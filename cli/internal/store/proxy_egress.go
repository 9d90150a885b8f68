package store

import (
	"context"
	"encoding/json"

	"gorm.io/gorm"

	"github.com/unjuno/flm/core/proxyctl"
)

// LatestProfile is the configuration of the proxy started most recently
// (proxy_profiles keeps the last configuration started on each port);
// ok is false when no proxy was ever started. Engine detection and model
// lists outside a proxy reach engines with its egress.
func (s Handles) LatestProfile(ctx context.Context) (cfg proxyctl.Config, ok bool, err error) {
	var rows []profileRow
	err = s.DB.read(ctx, "read proxy profiles", func(tx *gorm.DB) error {
		return tx.Order("created_at DESC").Order("id").Limit(1).Find(&rows).Error
	})
	if err != nil || len(rows) == 0 {
		return cfg, false, err
	}
	if err := json.Unmarshal([]byte(rows[0].ConfigJSON), &cfg); err != nil {
		// Unreadable is not "direct": the caller must not guess the egress.
		return cfg, false, dbErr(s.DB.Path, "read proxy profile "+rows[0].ID, err)
	}
	return cfg, true, nil
}
