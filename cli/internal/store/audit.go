package store

import (
	"context"
	"fmt"
	"time"

	"gorm.io/gorm"

	"github.com/unjuno/flm/proxy"
)

// Audit is the security.db implementation of proxy.AuditSink.
type Audit struct{ DB *DB }

var _ proxy.AuditSink = Audit{}

// AuditRetention is how long audit rows are kept.
const AuditRetention = 90 * 24 * time.Hour

// Audit implements proxy.AuditSink: one row per (collapsed) event; rows
// older than AuditRetention go in the same transaction.
func (s Audit) Audit(ctx context.Context, events []proxy.AuditEvent) error {
	return s.DB.write(ctx, "write audit log", func(tx *gorm.DB) error {
		if err := tx.Exec(`DELETE FROM audit_logs WHERE created_at < ?`, ms(time.Now().Add(-AuditRetention))).Error; err != nil {
			return err
		}
		for _, e := range events {
			details := e.Detail
			if e.Count > 1 {
				details = fmt.Sprintf("%s (x%d within a minute)", e.Detail, e.Count)
			}
			if err := tx.Exec(`INSERT INTO audit_logs (request_id, api_key_id, event_type, severity, ip, endpoint, status, details, created_at)
				VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`, e.RequestID, nullable(e.KeyID), e.Type, e.Severity, e.IP, e.Endpoint, e.Status, details, ms(e.At)).Error; err != nil {
				return err
			}
		}
		return nil
	})
}

func nullable(s string) any {
	if s == "" {
		return nil
	}
	return s
}
