package store

import (
	"context"
	"testing"

	"github.com/unjuno/flm/core/proxyctl"
	"github.com/unjuno/flm/core/proxyctl/proxyctltest"
)

// config.db's handle store keeps proxyctl's contract, control channel
// included.
func TestHandlesConformance(t *testing.T) {
	proxyctltest.RunHandleStore(t, func(t *testing.T) proxyctl.HandleStore {
		d, err := Open(context.Background(), t.TempDir(), Config)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { d.Close() })
		return Handles{DB: d}
	})
}

// A row written before handles had a control channel still reads, as a
// handle without one.
func TestHandlesReadRowsWithoutControl(t *testing.T) {
	ctx := context.Background()
	d, err := Open(ctx, t.TempDir(), Config)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	old := `{"id":"proxy-21500","pid":32367,"port":21500,"mode":"local-http","listen_addr":"127.0.0.1:21500","urls":{"local":"http://127.0.0.1:21500"},"egress":{"mode":"direct","fail_open":false},"started_at":"2026-11-27T10:09:42.781Z","running":true,"instance_id":"abc"}`
	if err := d.ExecForTest(`INSERT INTO active_proxy_handles (id, handle_json, created_at) VALUES ('proxy-21500', '` + old + `', 1)`); err != nil {
		t.Fatal(err)
	}
	hs, err := (Handles{DB: d}).List(ctx)
	if err != nil || len(hs) != 1 || hs[0].PID != 32367 || hs[0].InstanceID != "abc" || hs[0].Control != (proxyctl.Control{}) {
		t.Fatalf("List = %+v, %v", hs, err)
	}
}
