package store

import (
	"context"
	"encoding/json"
	"time"

	"gorm.io/gorm"

	"github.com/unjuno/flm/core/proxyctl"
)

// Handles is the config.db store of running proxies (active_proxy_handles)
// and of the configurations they were started with (proxy_profiles).
type Handles struct{ DB *DB }

type handleRow struct {
	ID         string `gorm:"primaryKey"`
	HandleJSON string
	CreatedAt  int64 `gorm:"autoCreateTime:false"`
}

func (handleRow) TableName() string { return "active_proxy_handles" }

type profileRow struct {
	ID         string `gorm:"primaryKey"`
	ConfigJSON string
	CreatedAt  int64 `gorm:"autoCreateTime:false"`
}

func (profileRow) TableName() string { return "proxy_profiles" }

// Save records a running proxy and the profile it runs, replacing an
// older record with the same id.
func (s Handles) Save(ctx context.Context, h proxyctl.Handle, cfg proxyctl.Config) error {
	hb, err := json.Marshal(h)
	if err != nil {
		return err
	}
	cb, err := json.Marshal(cfg)
	if err != nil {
		return err
	}
	now := ms(time.Now())
	return s.DB.write(ctx, "save proxy handle", func(tx *gorm.DB) error {
		if err := tx.Save(&handleRow{ID: h.ID, HandleJSON: string(hb), CreatedAt: now}).Error; err != nil {
			return err
		}
		return tx.Save(&profileRow{ID: h.ID, ConfigJSON: string(cb), CreatedAt: now}).Error
	})
}

// List returns every recorded handle, by id.
func (s Handles) List(ctx context.Context) ([]proxyctl.Handle, error) {
	var rows []handleRow
	if err := s.DB.read(ctx, "list proxy handles", func(tx *gorm.DB) error { return tx.Order("id").Find(&rows).Error }); err != nil {
		return nil, err
	}
	out := make([]proxyctl.Handle, 0, len(rows))
	for _, r := range rows {
		var h proxyctl.Handle
		if json.Unmarshal([]byte(r.HandleJSON), &h) == nil {
			out = append(out, h)
		}
	}
	return out, nil
}

// Remove forgets a handle; removing an unknown id is not an error.
func (s Handles) Remove(ctx context.Context, id string) error {
	return s.DB.write(ctx, "remove proxy handle", func(tx *gorm.DB) error {
		return tx.Where("id = ?", id).Delete(&handleRow{}).Error
	})
}
