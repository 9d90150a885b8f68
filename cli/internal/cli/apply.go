package cli

import (
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

// proxiesText is the text-mode report of applyToProxies' results. The
// command exits 0 when a proxy did not confirm (the change is stored), so
// the report must leave no doubt: each such proxy gets a warning line,
// after the summary, saying it may still enforce the previous state and
// how to fix that.
func proxiesText(w io.Writer, res []proxyctl.Result) {
	ok := 0
	for _, r := range res {
		if r.OK() {
			ok++
		}
	}
	if len(res) > 0 && res[0].HandleID != "" {
		fmt.Fprintf(w, "Applied by %d of %d running proxy(ies).\n", ok, len(res))
	}
	for _, r := range res {
		switch {
		case r.OK():
		case r.HandleID == "":
			fmt.Fprintf(w, "warning: the change is stored, but NO running proxy was reached (%s): %s\n", r.Code, r.Error)
		default:
			fmt.Fprintf(w, "warning: the change is stored, but proxy %s did NOT confirm it and may still enforce the previous state (%s: %s); "+
				"run `flm proxy reload --handle-id %s`, or restart it\n", r.HandleID, r.Code, r.Error, r.HandleID)
		}
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
		writePolicyDoc(w, doc)
		proxiesText(w, out.Proxies)
	})
}
