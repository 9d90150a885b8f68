package ui

import (
	"bytes"
	"encoding/json"
	"net/http"
	"strings"

	"github.com/unjuno/flm/core/flmerr"
	"github.com/unjuno/flm/core/policy"
	"github.com/unjuno/flm/core/proxyctl"
)

// policyForm is the Security policy form: lists one entry per line, rate
// fields as typed. The form turns it into a policy document and
// policy.Service.Set judges it, so the messages are the CLI's.
type policyForm struct {
	IPWhitelist     string `json:"ip_whitelist"`
	TrustedProxyIPs string `json:"trusted_proxy_ips"`
	CORSOrigins     string `json:"cors_origins"`
	RateRPM         string `json:"rate_limit_rpm"`
	RateBurst       string `json:"rate_limit_burst"`
	IPRateRPM       string `json:"ip_rate_limit_rpm"`
	IPRateBurst     string `json:"ip_rate_limit_burst"`
}

func formOf(p policy.Policy) policyForm {
	f := policyForm{IPWhitelist: strings.Join(p.IPWhitelist, "\n"), TrustedProxyIPs: strings.Join(p.TrustedProxyIPs, "\n"),
		CORSOrigins: strings.Join(p.CORS.AllowedOrigins, "\n")}
	num := func(n int) string { return jsonString(n) }
	if r := p.RateLimit; r != nil {
		f.RateRPM = num(r.RPM)
		if r.Burst != 0 {
			f.RateBurst = num(r.Burst)
		}
	}
	if r := p.IPRateLimit; r != nil {
		f.IPRateRPM = num(r.RPM)
		if r.Burst != 0 {
			f.IPRateBurst = num(r.Burst)
		}
	}
	return f
}

func jsonString(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}

func lines(s string) []string {
	out := []string{}
	for _, l := range strings.Split(s, "\n") {
		if l = strings.TrimSpace(l); l != "" {
			out = append(out, l)
		}
	}
	return out
}

// rateValue is what the user typed, as JSON: a number when it reads as
// one, else a string, so that the policy's own validation names it ("must
// be an integer …, got string \"ten\"").
func rateValue(s string) json.RawMessage {
	s = strings.TrimSpace(s)
	if s != "" && (s[0] == '-' || s[0] >= '0' && s[0] <= '9') && json.Valid([]byte(s)) {
		return json.RawMessage(s)
	}
	return json.RawMessage(jsonString(s))
}

func rateObject(rpm, burst string) json.RawMessage {
	if strings.TrimSpace(rpm) == "" && strings.TrimSpace(burst) == "" {
		return nil
	}
	var b bytes.Buffer
	b.WriteString("{")
	if strings.TrimSpace(rpm) != "" {
		b.WriteString(`"rpm":`)
		b.Write(rateValue(rpm))
	}
	if strings.TrimSpace(burst) != "" {
		if b.Len() > 1 {
			b.WriteString(",")
		}
		b.WriteString(`"burst":`)
		b.Write(rateValue(burst))
	}
	b.WriteString("}")
	return b.Bytes()
}

// document merges the form into the stored document: fields the form
// does not show (client_ip_header, x_ extensions) are kept as stored.
func (f policyForm) document(stored []byte) ([]byte, error) {
	doc := map[string]json.RawMessage{}
	if err := json.Unmarshal(stored, &doc); err != nil {
		return nil, flmerr.Wrap(err, flmerr.Internal, "read the stored policy")
	}
	set := func(k string, v any) { doc[k] = json.RawMessage(jsonString(v)) }
	set("ip_whitelist", lines(f.IPWhitelist))
	if t := lines(f.TrustedProxyIPs); len(t) > 0 {
		set("trusted_proxy_ips", t)
	} else {
		delete(doc, "trusted_proxy_ips")
	}
	cors := map[string]json.RawMessage{}
	if c, ok := doc["cors"]; ok {
		_ = json.Unmarshal(c, &cors)
	}
	cors["allowed_origins"] = json.RawMessage(jsonString(lines(f.CORSOrigins)))
	set("cors", cors)
	for k, v := range map[string]json.RawMessage{"rate_limit": rateObject(f.RateRPM, f.RateBurst), "ip_rate_limit": rateObject(f.IPRateRPM, f.IPRateBurst)} {
		if v == nil {
			delete(doc, k)
		} else {
			doc[k] = v
		}
	}
	return json.Marshal(doc)
}

// fieldOf names the form field a policy message is about: messages start
// with the document path ("cors.allowed_origins[1]: …").
func fieldOf(msg string) string {
	path, _, ok := strings.Cut(msg, ":")
	if !ok {
		return ""
	}
	switch {
	case strings.HasPrefix(path, "ip_whitelist"):
		return "ip_whitelist"
	case strings.HasPrefix(path, "trusted_proxy_ips"):
		return "trusted_proxy_ips"
	case strings.HasPrefix(path, "cors"):
		return "cors_origins"
	case strings.HasPrefix(path, "rate_limit.burst"):
		return "rate_limit_burst"
	case strings.HasPrefix(path, "rate_limit"):
		return "rate_limit_rpm"
	case strings.HasPrefix(path, "ip_rate_limit.burst"):
		return "ip_rate_limit_burst"
	case strings.HasPrefix(path, "ip_rate_limit"):
		return "ip_rate_limit_rpm"
	}
	return ""
}

func (s *Server) apiPolicy(w http.ResponseWriter, r *http.Request) {
	st, err := s.svc.Policy.Show(r.Context())
	if err != nil {
		writeFieldError(w, statusOf(err), err, fieldOf(err.Error()))
		return
	}
	warnings := st.Warnings
	if warnings == nil {
		warnings = []string{}
	}
	writeJSON(w, http.StatusOK, map[string]any{"form": formOf(st.Policy), "document": json.RawMessage(st.Policy.Document()),
		"updated_at": st.UpdatedAt, "warnings": warnings})
}

// apiSetPolicy is `flm security policy set` from the form: the whole
// document is validated by the policy service; invalid changes nothing.
func (s *Server) apiSetPolicy(w http.ResponseWriter, r *http.Request) {
	var f policyForm
	if !decode(w, r, &f) {
		return
	}
	s.writes.Lock()
	defer s.writes.Unlock()
	st, err := s.svc.Policy.Show(r.Context())
	if err != nil {
		writeFieldError(w, statusOf(err), err, fieldOf(err.Error()))
		return
	}
	s.storePolicy(w, r, f, st.Policy.Document())
}

// storePolicy stores the form merged into the stored document (the caller
// holds s.writes).
func (s *Server) storePolicy(w http.ResponseWriter, r *http.Request, f policyForm, stored []byte) {
	doc, err := f.document(stored)
	if err != nil {
		writeError(w, statusOf(err), err)
		return
	}
	saved, err := s.svc.Policy.Set(r.Context(), doc)
	if err != nil {
		writeFieldError(w, statusOf(err), err, fieldOf(err.Error()))
		return
	}
	s.log.Info("ui set the security policy")
	writeJSON(w, http.StatusOK, map[string]any{"form": formOf(saved.Policy), "document": json.RawMessage(saved.Policy.Document()),
		"updated_at": saved.UpdatedAt, "proxies": s.svc.Apply(r.Context(), proxyctl.ReloadSecurity)})
}
