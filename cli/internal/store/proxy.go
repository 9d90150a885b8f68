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

// storedHandle is handle_json: the handle's own JSON plus its control
// channel, which the handle never marshals (proxy status prints handles).
// Rows written before the control channel existed read with none.
type storedHandle struct {
	proxyctl.Handle
	ControlAddr  string `json:"control_addr,omitempty"`
	ControlToken string `json:"control_token,omitempty"`
}

var _ proxyctl.HandleStore = Handles{}

// Save records a running proxy and the profile it runs, replacing an
// older record with the same id. config.db is 0600: the control token
// stays with the user.
func (s Handles) Save(ctx context.Context, h proxyctl.Handle, cfg proxyctl.Config) error {
	hb, err := json.Marshal(storedHandle{Handle: h, ControlAddr: h.Control.Addr, ControlToken: h.Control.Token})
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
		var sh storedHandle
		if json.Unmarshal([]byte(r.HandleJSON), &sh) == nil {
			sh.Handle.Control = proxyctl.Control{Addr: sh.ControlAddr, Token: sh.ControlToken}
			out = append(out, sh.Handle)
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
