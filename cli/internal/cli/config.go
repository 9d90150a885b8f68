package cli

import (
	"fmt"
	"io"

	"github.com/unjuno/flm/cli/internal/store"
	"github.com/unjuno/flm/core/settings"
)

// ConfigCmd is `flm config`.
type ConfigCmd struct {
	Get  ConfigGetCmd  `cmd:"" help:"Print one setting."`
	Set  ConfigSetCmd  `cmd:"" help:"Change one setting."`
	List ConfigListCmd `cmd:"" help:"Print every setting."`
}

func (a *App) settings() (*settings.Service, error) {
	d, err := a.DB(store.Config)
	if err != nil {
		return nil, err
	}
	return &settings.Service{Store: store.Settings{DB: d}}, nil
}

type settingOut struct {
	Key       string `json:"key"`
	Value     string `json:"value"`
	Default   bool   `json:"default"`
	UpdatedAt string `json:"updated_at,omitempty"`
}

func toSettingOut(v settings.Value) settingOut {
	return settingOut{Key: v.Key, Value: v.Value, Default: v.Default, UpdatedAt: stamp(v.UpdatedAt)}
}

// ConfigGetCmd is `flm config get KEY`.
type ConfigGetCmd struct {
	Key string `arg:"" help:"Setting key, e.g. engine.health_latency_threshold_ms."`
}

// Run prints the setting.
func (c ConfigGetCmd) Run(a *App) error {
	svc, err := a.settings()
	if err != nil {
		return err
	}
	v, err := svc.Get(a.ctx, c.Key)
	if err != nil {
		return err
	}
	return a.print(toSettingOut(v), func(w io.Writer) { fmt.Fprintln(w, v.Value) })
}

// ConfigSetCmd is `flm config set KEY VALUE`.
type ConfigSetCmd struct {
	Key   string `arg:"" help:"Setting key."`
	Value string `arg:"" help:"New value."`
}

// Run validates and stores the setting.
func (c ConfigSetCmd) Run(a *App) error {
	svc, err := a.settings()
	if err != nil {
		return err
	}
	v, err := svc.Set(a.ctx, c.Key, c.Value)
	if err != nil {
		return err
	}
	return a.print(toSettingOut(v), func(w io.Writer) { fmt.Fprintf(w, "%s = %s\n", v.Key, v.Value) })
}

// ConfigListCmd is `flm config list`.
type ConfigListCmd struct{}

// Run prints every known setting.
func (ConfigListCmd) Run(a *App) error {
	svc, err := a.settings()
	if err != nil {
		return err
	}
	vals, err := svc.List(a.ctx)
	if err != nil {
		return err
	}
	cfg := map[string]string{}
	items := make([]settingOut, len(vals))
	for i, v := range vals {
		cfg[v.Key] = v.Value
		items[i] = toSettingOut(v)
	}
	return a.print(map[string]any{"config": cfg, "settings": items}, func(w io.Writer) {
		t := table(w, "KEY", "VALUE", "SOURCE", "UPDATED")
		for _, v := range vals {
			src := "set"
			if v.Default {
				src = "default"
			}
			t.row(v.Key, v.Value, src, stamp(v.UpdatedAt))
		}
		t.flush()
	})
}
