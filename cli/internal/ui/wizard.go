package ui

import (
	"context"
	"errors"
	"net/http"
	"runtime"
	"strconv"
	"strings"
	"time"

	"github.com/unjuno/flm/cli/internal/firewall"
	"github.com/unjuno/flm/core/flmerr"
	"github.com/unjuno/flm/core/proxyctl"
)

// Wizard is what the setup wizard needs beyond the core services: the
// machine's firewall and the commands to show when the UI may not act.
// Every field is optional. The UI runs no program itself (an import-graph
// test keeps os/exec out of this package): LookPath and Run come from the
// CLI's wiring; without Run, applying is refused and the commands are only
// shown.
type Wizard struct {
	GOOS       string
	LookPath   func(string) (string, error)
	Privileged func() bool
	Run        firewall.Runner
	LANCIDRs   func() []string
	// LogDir is <data>/logs/security: rollback scripts and logs go there.
	// Without it, applying is refused.
	LogDir string
	// InstallCACommand is the exact command that installs the local CA
	// (packaged-ca), shown for the user to run: it needs root and its own
	// consent.
	InstallCACommand string
}

func (z Wizard) goos() string {
	if z.GOOS != "" {
		return z.GOOS
	}
	return runtime.GOOS
}

func (z Wizard) privileged() bool {
	if z.Privileged != nil {
		return z.Privileged()
	}
	return firewall.Privileged()
}

func (z Wizard) canApply() bool {
	return z.Run != nil && z.LogDir != "" && z.privileged()
}

func (s *Server) apiWizard(w http.ResponseWriter, r *http.Request) {
	z := s.svc.Wizard
	look := z.LookPath
	if look == nil {
		look = func(string) (string, error) { return "", errors.New("no lookup") }
	}
	cidrs := z.LANCIDRs
	if cidrs == nil {
		cidrs = firewall.LocalPrivateCIDRs
	}
	port, err := s.svc.DefaultPort(r.Context())
	if err != nil {
		port = proxyctl.DefaultConfig().Port
	}
	goos := z.goos()
	detected := firewall.Detect(goos, look)
	lan := cidrs()
	if lan == nil {
		lan = []string{}
	}
	if detected == nil {
		detected = []firewall.Tool{}
	}
	writeJSON(w, http.StatusOK, map[string]any{
		"os": goos, "tools": firewall.ToolsFor(goos), "detected": detected, "privileged": z.privileged(),
		"can_apply": z.canApply(), "lan_cidrs": lan, "default_port": port,
		"install_ca_command": z.InstallCACommand, "log_dir": z.LogDir,
	})
}

// wizardFirewallIn is the firewall step: the proxy's mode and port (the
// rules open port, and port+1 for a TLS mode) and the CIDR of the policy
// step.
type wizardFirewallIn struct {
	Tool    string `json:"tool"`
	Mode    string `json:"mode"`
	Port    string `json:"port"`
	CIDR    string `json:"cidr"`
	Consent bool   `json:"consent"`
}

func (in wizardFirewallIn) rules() (firewall.Rules, string, error) {
	port, err := strconv.Atoi(strings.TrimSpace(in.Port))
	if err != nil || port < 1 || port > 65535 {
		return firewall.Rules{}, "port", flmerr.New(flmerr.InvalidArgument, "port: %q is not a number (1-65535)", in.Port)
	}
	cfg := proxyctl.Config{Mode: proxyctl.Mode(in.Mode), Port: port}
	if cfg.Mode == "" {
		cfg.Mode = proxyctl.LocalHTTP
	}
	ports := []int{port}
	if hp := cfg.HTTPSPort(); hp != 0 {
		if hp > 65535 {
			return firewall.Rules{}, "port", flmerr.New(flmerr.InvalidArgument, "port %d: a TLS mode also needs port+1; want 1-65534", port)
		}
		ports = append(ports, hp)
	}
	rs, err := firewall.Generate(firewall.Tool(in.Tool), firewall.Input{Ports: ports, CIDR: in.CIDR})
	if err != nil {
		field := "cidr"
		if !strings.Contains(err.Error(), "CIDR") {
			field = "tool"
		}
		return firewall.Rules{}, field, err
	}
	return rs, "", nil
}

// apiWizardFirewall previews the rules: nothing runs.
func (s *Server) apiWizardFirewall(w http.ResponseWriter, r *http.Request) {
	var in wizardFirewallIn
	if !decode(w, r, &in) {
		return
	}
	rs, field, err := in.rules()
	if err != nil {
		writeFieldError(w, http.StatusBadRequest, err, field)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{
		"tool": rs.Tool, "os": rs.OS, "ports": rs.Ports, "cidr": rs.CIDR,
		"apply": firewall.Lines(rs.OS, rs.Apply), "rollback": firewall.Lines(rs.OS, rs.Rollback),
		"script": firewall.Script(rs.OS, "FLM firewall rules", rs.Apply), "script_ext": firewall.ScriptExt(rs.OS),
		"can_apply": s.svc.Wizard.canApply() && rs.OS == s.svc.Wizard.goos(),
	})
}

// apiWizardFirewallApply runs the rules: only with the user's consent in
// this request, only when this process is privileged (it never escalates:
// otherwise the answer says to run the shown commands), and only for this
// machine's OS. The rollback script is saved first; what ran is logged.
func (s *Server) apiWizardFirewallApply(w http.ResponseWriter, r *http.Request) {
	var in wizardFirewallIn
	if !decode(w, r, &in) {
		return
	}
	rs, field, err := in.rules()
	if err != nil {
		writeFieldError(w, http.StatusBadRequest, err, field)
		return
	}
	z := s.svc.Wizard
	switch {
	case !in.Consent:
		writeFieldError(w, http.StatusBadRequest, flmerr.New(flmerr.InvalidArgument, "tick the box to agree that FLM changes this machine's firewall; nothing changed"), "consent")
		return
	case rs.OS != z.goos():
		writeFieldError(w, http.StatusBadRequest, flmerr.New(flmerr.InvalidArgument, "these are rules for %s; this machine runs %s; nothing changed", rs.OS, z.goos()), "tool")
		return
	case z.LogDir == "" || z.Run == nil:
		writeError(w, http.StatusBadRequest, flmerr.New(flmerr.InvalidArgument, "this UI cannot run firewall commands; nothing changed. Run the commands shown, as root, yourself"))
		return
	case !z.privileged():
		writeError(w, http.StatusForbidden, flmerr.New(flmerr.InvalidArgument, "changing the firewall needs root (Administrator on Windows) and this UI runs without it; nothing changed. Run the commands shown, as root, yourself"))
		return
	}
	run := z.Run
	s.writes.Lock()
	defer s.writes.Unlock()
	ctx, cancel := context.WithTimeout(r.Context(), time.Minute)
	defer cancel()
	res, err := firewall.Apply(ctx, rs, run, z.LogDir, s.now())
	s.log.Info("ui applied firewall rules", "tool", rs.Tool, "ports", rs.Ports, "cidr", rs.CIDR, "ran", res.Ran, "log", res.Log, "ok", err == nil)
	if err != nil {
		writeJSON(w, http.StatusInternalServerError, map[string]any{"error": failureOf(err), "ran": res.Ran,
			"rollback_script": res.RollbackScript, "log": res.Log})
		return
	}
	writeJSON(w, http.StatusOK, res)
}

// apiWizardPolicy is the wizard's policy step: the allowlist replaces the
// stored one, every other field stays; the policy service judges it, as
// on the Security policy screen.
func (s *Server) apiWizardPolicy(w http.ResponseWriter, r *http.Request) {
	var in struct {
		IPWhitelist string `json:"ip_whitelist"`
	}
	if !decode(w, r, &in) {
		return
	}
	s.writes.Lock()
	defer s.writes.Unlock()
	st, err := s.svc.Policy.Show(r.Context())
	if err != nil {
		writeFieldError(w, statusOf(err), err, fieldOf(err.Error()))
		return
	}
	f := formOf(st.Policy)
	f.IPWhitelist = in.IPWhitelist
	s.storePolicy(w, r, f, st.Policy.Document())
}
