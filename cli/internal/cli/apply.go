package cli

import (
	"encoding/json"
	"fmt"
	"io"

	"github.com/unjuno/flm/core/flmerr"
	"github.com/unjuno/flm/core/policy"
	"github.com/unjuno/flm/core/proxyctl"
)

// Commands that change what proxies enforce (api-keys create|revoke|rotate,
// security policy set, engines add|remove) return only once every running
// proxy of the data dir applied the change, and say which did not.

// applyToProxies makes every running proxy of the data dir enforce what a
// command just stored, and returns each one's answer for the command's
// output ("proxies"). The change itself is stored whatever this reports.
func (a *App) applyToProxies(parts proxyctl.Parts) []proxyctl.Result {
	svc, err := a.proxyService()
	if err == nil {
		var res []proxyctl.Result
		if res, err = svc.Apply(a.ctx, parts); err == nil {
			return res
		}
	}
	return []proxyctl.Result{{Code: flmerr.CodeOf(err), Error: "cannot list the running proxies: " + err.Error() + "; run `flm proxy reload --all`"}}
}

// proxiesText is the text-mode line about applyToProxies' results.
func proxiesText(w io.Writer, res []proxyctl.Result) {
	ok := 0
	for _, r := range res {
		if r.OK() {
			ok++
			continue
		}
		id := r.HandleID
		if id == "" {
			id = "proxies"
		}
		fmt.Fprintf(w, "warning: %s did not apply the change: %s\n", id, r.Error)
	}
	if ok > 0 {
		fmt.Fprintf(w, "Applied by %d running proxy(ies).\n", ok)
	}
}

// printPolicySet is `security policy set`'s output: the stored policy and
// each running proxy's answer.
func (a *App) printPolicySet(s policy.Stored) error {
	doc := s.Policy.Document()
	out := struct {
		policyOut
		Proxies []proxyctl.Result `json:"proxies"`
	}{policyOut{ID: "default", PolicyJSON: doc, UpdatedAt: stamp(s.UpdatedAt)}, a.applyToProxies(proxyctl.ReloadSecurity)}
	return a.print(out, func(w io.Writer) {
		var pretty any
		_ = json.Unmarshal(doc, &pretty)
		b, _ := json.MarshalIndent(pretty, "", "  ")
		fmt.Fprintf(w, "%s\n", b)
		proxiesText(w, out.Proxies)
	})
}
