package settings_test

import (
	"context"
	"strings"
	"testing"

	"github.com/unjuno/flm/core/flmerr"
	"github.com/unjuno/flm/core/settings"
	"github.com/unjuno/flm/core/settings/settingstest"
)

func TestService(t *testing.T) {
	ctx := context.Background()
	st := settingstest.NewMemStore()
	svc := &settings.Service{Store: st}

	v, err := svc.Get(ctx, settings.HealthLatencyThresholdMS)
	if err != nil || v.Value != "1500" || !v.Default {
		t.Fatalf("default = %+v, %v", v, err)
	}
	if v, err = svc.Set(ctx, settings.HealthLatencyThresholdMS, " 1200 "); err != nil || v.Value != "1200" {
		t.Fatalf("Set = %+v, %v", v, err)
	}
	if v, _ = svc.Get(ctx, settings.HealthLatencyThresholdMS); v.Value != "1200" || v.Default {
		t.Fatalf("after Set, Get = %+v", v)
	}
	if n, err := svc.Int(ctx, settings.HealthLatencyThresholdMS); n != 1200 || err != nil {
		t.Fatalf("Int = %d, %v", n, err)
	}

	if _, err := svc.Get(ctx, "engine.nope"); !flmerr.Is(err, flmerr.ConfigNotSet) {
		t.Fatalf("Get(unknown) = %v, want CONFIG_NOT_SET", err)
	}
	bad := map[string]string{
		"engine.nope":                           "1",
		settings.HealthLatencyThresholdMS:       "fast",
		settings.MaxNetworkFailures:             "0",
		settings.ProxyPort:                      "70000",
		settings.PreferredLanguage:              "fr",
		strings.Repeat("k", 5000):               "1",
		settings.ProxyBodyLimitBytes:            "1.5",
		settings.HealthLatencyThresholdMS + " ": "1",
	}
	for k, val := range bad {
		if _, err := svc.Set(ctx, k, val); !flmerr.Is(err, flmerr.InvalidArgument) || len(err.Error()) > 400 {
			t.Errorf("Set(%.30q, %q) = %v, want a short INVALID_ARGUMENT", k, val, err)
		}
	}
	stored, _ := st.List(ctx)
	if len(stored) != 1 {
		t.Fatalf("refused sets changed the store: %+v", stored)
	}

	all, err := svc.List(ctx)
	if err != nil || len(all) != len(settings.Defs()) {
		t.Fatalf("List = %+v, %v", all, err)
	}
	for _, v := range all {
		if v.Key == settings.HealthLatencyThresholdMS && v.Value != "1200" {
			t.Fatalf("List shows %s = %s", v.Key, v.Value)
		}
	}

	// A stored value that no longer validates falls back to the default.
	_ = st.Set(ctx, settings.Value{Key: settings.MaxNetworkFailures, Value: "999"})
	if n, _ := svc.Int(ctx, settings.MaxNetworkFailures); n != 3 {
		t.Fatalf("Int(out-of-range stored) = %d, want default 3", n)
	}
}
