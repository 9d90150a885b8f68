package policy_test

import (
	"context"
	"errors"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/unjuno/flm/core/flmerr"
	"github.com/unjuno/flm/core/policy"
	"github.com/unjuno/flm/core/policy/policytest"
)

// Service tests live in policy_test because policytest imports policy.

var fixedNow = time.Date(2025, 6, 7, 8, 9, 10, 0, time.UTC)

func newService(t *testing.T) (*policy.Service, policy.Store) {
	t.Helper()
	st := policytest.NewMemStore()
	return &policy.Service{Store: st, Now: func() time.Time { return fixedNow }}, st
}

func storedDoc(t *testing.T, st policy.Store) string {
	t.Helper()
	doc, _, err := st.Get(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	return string(doc)
}

func TestServiceShowDefault(t *testing.T) {
	svc, _ := newService(t)
	got, err := svc.Show(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if doc := string(got.Policy.Document()); doc != policy.DefaultDocument {
		t.Fatalf("Show on a fresh store = %s, want the default", doc)
	}
}

func TestServiceSet(t *testing.T) {
	svc, st := newService(t)
	got, err := svc.Set(t.Context(), []byte(` {"ip_whitelist":["10.0.0.0/8"],"cors":{"allowed_origins":["HTTPS://App.Example:443"]},"x_future":[ 1 ]} `))
	if err != nil {
		t.Fatal(err)
	}
	const want = `{"ip_whitelist":["10.0.0.0/8"],"cors":{"allowed_origins":["https://app.example"]},"x_future":[1]}`
	if doc := storedDoc(t, st); doc != want {
		t.Fatalf("stored %s\nwant %s", doc, want)
	}
	if !got.UpdatedAt.Equal(fixedNow) || string(got.Policy.Document()) != want {
		t.Fatalf("Set returned %v %s", got.UpdatedAt, got.Policy.Document())
	}
	shown, err := svc.Show(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if !shown.UpdatedAt.Equal(fixedNow) || string(shown.Policy.Document()) != want {
		t.Fatalf("Show returned %v %s", shown.UpdatedAt, shown.Policy.Document())
	}
}

func TestServiceSetInvalidChangesNothing(t *testing.T) {
	for _, doc := range []string{
		``,
		`{"ip_whitelist":["10.0.0.0/33"]}`,
		`{"rate_limit":{"rpm":1.5}}`,
		`{"cors":null}`,
		`{} x`,
	} {
		t.Run(doc, func(t *testing.T) {
			svc, st := newService(t)
			if _, err := svc.Set(t.Context(), []byte(`{"ip_whitelist":["10.0.0.1"]}`)); err != nil {
				t.Fatal(err)
			}
			before := storedDoc(t, st)
			_, err := svc.Set(t.Context(), []byte(doc))
			if !flmerr.Is(err, flmerr.PolicyInvalid) {
				t.Fatalf("Set(%q) error = %v, want POLICY_INVALID", doc, err)
			}
			if after := storedDoc(t, st); after != before {
				t.Fatalf("invalid Set changed the store: %s -> %s", before, after)
			}
		})
	}
}

func TestServiceShowCorrupt(t *testing.T) {
	svc, st := newService(t)
	if err := st.Put(t.Context(), []byte(`{"ip_whitelist":null}`), fixedNow); err != nil {
		t.Fatal(err)
	}
	_, err := svc.Show(t.Context())
	if !flmerr.Is(err, flmerr.PolicyInvalid) {
		t.Fatalf("Show of a corrupt document: err = %v, want POLICY_INVALID", err)
	}
	if msg := err.Error(); !strings.Contains(msg, "stored security policy is invalid") || !strings.Contains(msg, "ip_whitelist: must be an array") {
		t.Fatalf("message %q does not name the problem", msg)
	}
}

type failingStore struct{ err error }

func (f failingStore) Get(context.Context) ([]byte, time.Time, error) { return nil, time.Time{}, f.err }
func (f failingStore) Put(context.Context, []byte, time.Time) error   { return f.err }

func TestServiceStoreErrorsPassThrough(t *testing.T) {
	storeErr := flmerr.New(flmerr.DBReadOnly, "read-only")
	svc := &policy.Service{Store: failingStore{storeErr}}
	if _, err := svc.Show(t.Context()); !errors.Is(err, storeErr) {
		t.Errorf("Show error = %v, want the store's", err)
	}
	if _, err := svc.Set(t.Context(), []byte(`{}`)); !errors.Is(err, storeErr) {
		t.Errorf("Set error = %v, want the store's", err)
	}
}

func TestServiceDefaultClock(t *testing.T) {
	st := policytest.NewMemStore()
	svc := &policy.Service{Store: st}
	before := time.Now()
	got, err := svc.Set(t.Context(), []byte(`{}`))
	if err != nil {
		t.Fatal(err)
	}
	if got.UpdatedAt.Before(before.Round(0).Truncate(time.Millisecond)) || got.UpdatedAt.After(time.Now()) {
		t.Fatalf("UpdatedAt = %v, want about now", got.UpdatedAt)
	}
}

func TestServiceWithoutStore(t *testing.T) {
	var svc policy.Service
	if _, err := svc.Show(t.Context()); !flmerr.Is(err, flmerr.Internal) {
		t.Errorf("Show without a store: %v", err)
	}
	if _, err := svc.Set(t.Context(), []byte(`{}`)); !flmerr.Is(err, flmerr.Internal) {
		t.Errorf("Set without a store: %v", err)
	}
}

// The attack: an admin means to restrict the gateway to the LAN and
// misspells the field. Before, the document was accepted with an empty
// whitelist and a client from anywhere got in.
func TestServiceSetMisspelledFieldFailsClosed(t *testing.T) {
	attacker := netip.MustParseAddr("203.0.113.9")
	for doc, want := range map[string]string{
		`{"ip_whitelst":["10.0.0.0/8"]}`:                                            `unknown field "ip_whitelst"; did you mean "ip_whitelist"?`,
		`{"ip_allowlist":["10.0.0.0/8"]}`:                                           `unknown field "ip_allowlist"; did you mean "ip_whitelist"?`,
		`{"ip_whitelist":["10.0.0.0/8"],"cors":{"origins":["*"]}}`:                  `cors: unknown field "origins"; did you mean "allowed_origins"?`,
		`{"ip_whitelist":["10.0.0.0/8"],"ip_rate_limit":{"requests_per_minute":5}}`: `ip_rate_limit: unknown field "requests_per_minute"; did you mean "rpm"?`,
	} {
		t.Run(doc, func(t *testing.T) {
			svc, st := newService(t)
			if _, err := svc.Set(t.Context(), []byte(`{"ip_whitelist":["192.168.0.0/16"]}`)); err != nil {
				t.Fatal(err)
			}
			before := storedDoc(t, st)
			_, err := svc.Set(t.Context(), []byte(doc))
			if !flmerr.Is(err, flmerr.PolicyInvalid) || !strings.Contains(err.Error(), want) {
				t.Fatalf("Set(%s) error = %v, want POLICY_INVALID containing %q", doc, err, want)
			}
			if after := storedDoc(t, st); after != before {
				t.Fatalf("a refused Set changed the store: %s -> %s", before, after)
			}
			shown, err := svc.Show(t.Context())
			if err != nil {
				t.Fatal(err)
			}
			if shown.Policy.Compile().AllowsIP(attacker) {
				t.Fatalf("after the refused Set, %v is allowed", attacker)
			}
		})
	}
}

// An earlier FLM kept every unknown field, so a store may hold fields that
// have never had an effect. One whose absence cannot open the gateway (a
// stray cors field) neither stops a running install nor passes for a clean
// policy.
func TestServiceShowStoredUnknownFields(t *testing.T) {
	svc, st := newService(t)
	const legacy = `{"ip_whitelist":["10.0.0.0/8"],"cors":{"allowed_origins":[],"max_age":600},"x_note":"kept"}`
	if err := st.Put(t.Context(), []byte(legacy), fixedNow); err != nil {
		t.Fatal(err)
	}
	shown, err := svc.Show(t.Context())
	if err != nil {
		t.Fatalf("Show of a document an earlier FLM stored: %v", err)
	}
	c := shown.Policy.Compile()
	if !c.AllowsIP(netip.MustParseAddr("10.1.2.3")) || c.AllowsIP(netip.MustParseAddr("192.168.1.1")) {
		t.Fatal("the stored policy is not enforced as stored")
	}
	if len(shown.Warnings) != 1 ||
		shown.Warnings[0] != `cors: unknown field "max_age" is ignored (an earlier FLM stored it; fix the policy with `+
			"`flm security policy set`"+`); the known fields are allowed_origins (extension fields start with "x_")` {
		t.Fatalf("Warnings = %q, want one per unknown field (not the x_ extension), each saying how to fix it", shown.Warnings)
	}
	if err := shown.Policy.Validate(); !flmerr.Is(err, flmerr.PolicyInvalid) || !strings.Contains(err.Error(), `cors: unknown field "max_age"`) {
		t.Fatalf("Validate of the stored policy = %v, want POLICY_INVALID naming the field", err)
	}
	if doc := string(shown.Policy.Document()); doc != legacy {
		t.Fatalf("Document() = %s: a stored field was lost", doc)
	}
	// Writing it back unchanged is refused; removing the field clears it.
	if _, err := svc.Set(t.Context(), shown.Policy.Document()); !flmerr.Is(err, flmerr.PolicyInvalid) {
		t.Fatalf("Set of the stored document = %v, want POLICY_INVALID", err)
	}
	if got := storedDoc(t, st); got != legacy {
		t.Fatalf("refused Set changed the store to %s", got)
	}
	if _, err := svc.Set(t.Context(), []byte(`{"ip_whitelist":["10.0.0.0/8"],"x_note":"kept"}`)); err != nil {
		t.Fatal(err)
	}
	if shown, err = svc.Show(t.Context()); err != nil || shown.Warnings != nil {
		t.Fatalf("after the fix: Show = %v, %q", err, shown.Warnings)
	}
}

// The attack of the review: an earlier FLM accepted a misspelled
// restriction and stored it; loading that document leniently left the
// allowlist (or rate limit) empty and every client in, with only a warning
// in a log. Loading it must fail closed, naming the field and the fix, so
// the proxy refuses to start and a running one keeps its last good policy.
func TestServiceShowStoredMisspelledRestrictionFailsClosed(t *testing.T) {
	attacker := netip.MustParseAddr("1.2.3.4")
	for doc, want := range map[string]string{
		`{"ip_whitelst":["10.0.0.0/8"]}`:  `unknown field "ip_whitelst" (value ["10.0.0.0/8"]); did you mean "ip_whitelist"?`,
		`{"ip_allowlist":["10.0.0.0/8"]}`: `unknown field "ip_allowlist" (value ["10.0.0.0/8"]); did you mean "ip_whitelist"?`,
		// A correct field beside the misspelled one does not make it harmless.
		`{"ip_whitelist":["10.0.0.0/8"],"ip_whitelst":["192.168.0.0/16"]}`: `unknown field "ip_whitelst"`,
		`{"rate_limt":{"rpm":60}}`:                                                `unknown field "rate_limt" (value {"rpm":60}); did you mean "rate_limit"?`,
		`{"ip_rate_limt":{"rpm":60}}`:                                             `unknown field "ip_rate_limt" (value {"rpm":60}); did you mean "ip_rate_limit"?`,
		`{"rate_limit":{"rpm":600,"brust":5}}`:                                    `rate_limit: unknown field "brust" (value 5); did you mean "burst"?`,
		`{"ip_rate_limit":{"rpm":0,"rmp":10}}`:                                    `ip_rate_limit: unknown field "rmp" (value 10); did you mean "rpm"?`,
		`{"requests_per_minute":10}`:                                              `unknown field "requests_per_minute" (value 10); did you mean "rate_limit.rpm"?`,
		`{"trusted_proxies":["127.0.0.1"]}`:                                       `unknown field "trusted_proxies" (value ["127.0.0.1"]); did you mean "trusted_proxy_ips"?`,
		`{"blocked_ips":["1.2.3.4"]}`:                                             `unknown field "blocked_ips" (value ["1.2.3.4"]); the known fields are`,
		`{"ip_rate_limit":{"rpm":60,"window":"1h"}}`:                              `ip_rate_limit: unknown field "window"`,
		`{"trusted_proxy_ips":["127.0.0.1"],"client_ip_header":"True-Client-IP"}`: `client_ip_header "True-Client-IP"; it must be`,
		`{"trusted_proxy_ips":["127.0.0.1"],"real_ip_header":"X-Real-IP"}`:        `unknown field "real_ip_header" (value "X-Real-IP"); did you mean "client_ip_header"?`,
	} {
		t.Run(doc, func(t *testing.T) {
			svc, st := newService(t)
			if err := st.Put(t.Context(), []byte(doc), fixedNow); err != nil {
				t.Fatal(err)
			}
			shown, err := svc.Show(t.Context())
			if !flmerr.Is(err, flmerr.PolicyInvalid) {
				c := shown.Policy.Compile()
				t.Fatalf("Show = %v (warnings %q); %v allowed: %v; want POLICY_INVALID", err, shown.Warnings, attacker, c.AllowsIP(attacker))
			}
			msg := err.Error()
			for _, part := range []string{"the stored security policy is invalid", want, "`flm security policy set`", "keeps its last good policy"} {
				if !strings.Contains(msg, part) {
					t.Fatalf("message %q does not contain %q", msg, part)
				}
			}
			if !shown.UpdatedAt.IsZero() || shown.Warnings != nil {
				t.Fatalf("Show returned a stored policy with the error: %+v", shown)
			}
			if got := storedDoc(t, st); got != doc {
				t.Fatalf("Show changed the store to %s", got)
			}
			// The fix is the one the message names.
			if _, err := svc.Set(t.Context(), []byte(`{"ip_whitelist":["10.0.0.0/8"]}`)); err != nil {
				t.Fatal(err)
			}
			if shown, err = svc.Show(t.Context()); err != nil || shown.Policy.Compile().AllowsIP(attacker) {
				t.Fatalf("after policy set: %v", err)
			}
		})
	}
}

// The other side of the rule: a stored field whose absence cannot let in
// more than its author meant only warns, so an install that works keeps
// working.
func TestServiceShowStoredHarmlessFieldsWarn(t *testing.T) {
	for doc, want := range map[string]string{
		`{"cors":{"allowed_origins":[],"allow_credentials":true}}`: `cors: unknown field "allow_credentials" is ignored`,
		`{"cors":{"allowed_origns":["https://a.example"]}}`:        `cors: unknown field "allowed_origns" is ignored`,
		`{"allowed_origins":["https://a.example"]}`:                `unknown field "allowed_origins" is ignored (an earlier FLM stored it; fix the policy with ` + "`flm security policy set`" + `); did you mean "cors.allowed_origins"?`,
		`{"cros":{"allowed_origins":["*"]}}`:                       `did you mean "cors"?`,
		`{"x-note":"hello"}`:                                       `did you mean "x_note"?`,
		`{"client_ip_header":"X-Real-IP"}`:                         `client_ip_header "X-Real-IP" is ignored`,
		`{"real_ip_header":"X-Real-IP"}`:                           `did you mean "client_ip_header"?`,
	} {
		t.Run(doc, func(t *testing.T) {
			svc, st := newService(t)
			if err := st.Put(t.Context(), []byte(doc), fixedNow); err != nil {
				t.Fatal(err)
			}
			shown, err := svc.Show(t.Context())
			if err != nil {
				t.Fatalf("Show = %v, want the policy with a warning", err)
			}
			if len(shown.Warnings) != 1 || !strings.Contains(shown.Warnings[0], want) {
				t.Fatalf("Warnings = %q, want one containing %q", shown.Warnings, want)
			}
			c := shown.Policy.Compile()
			if !c.AllowsIP(netip.MustParseAddr("1.2.3.4")) || c.AllowsOrigin("https://a.example") || c.RealIPHeader() {
				t.Fatal("an ignored field took effect")
			}
		})
	}
}

// Case variants of known fields were refused by earlier versions too, so a
// store cannot hold one; if it does, Show reports it as before.
func TestServiceShowStoredCaseVariant(t *testing.T) {
	svc, st := newService(t)
	if err := st.Put(t.Context(), []byte(`{"IP_Whitelist":["10.0.0.1"]}`), fixedNow); err != nil {
		t.Fatal(err)
	}
	if _, err := svc.Show(t.Context()); !flmerr.Is(err, flmerr.PolicyInvalid) || !strings.Contains(err.Error(), "keys are case-sensitive") {
		t.Fatalf("Show = %v, want POLICY_INVALID", err)
	}
}

func TestServiceClientIPHeader(t *testing.T) {
	svc, st := newService(t)
	got, err := svc.Set(t.Context(), []byte(`{"trusted_proxy_ips":["127.0.0.1"],"client_ip_header":"x-real-ip"}`))
	if err != nil {
		t.Fatal(err)
	}
	const want = `{"ip_whitelist":[],"trusted_proxy_ips":["127.0.0.1"],"client_ip_header":"X-Real-IP","cors":{"allowed_origins":[]}}`
	if doc := storedDoc(t, st); doc != want || string(got.Policy.Document()) != want {
		t.Fatalf("stored %s, returned %s\nwant %s", doc, got.Policy.Document(), want)
	}
	shown, err := svc.Show(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if shown.Policy.ClientIPHeader != policy.HeaderXRealIP || !shown.Policy.Compile().RealIPHeader() {
		t.Fatalf("Show: client_ip_header = %q, RealIPHeader() = %v", shown.Policy.ClientIPHeader, shown.Policy.Compile().RealIPHeader())
	}
	// X-Real-IP without a trusted proxy is refused and changes nothing.
	_, err = svc.Set(t.Context(), []byte(`{"client_ip_header":"X-Real-IP"}`))
	if !flmerr.Is(err, flmerr.PolicyInvalid) || !strings.Contains(err.Error(), "trusted_proxy_ips") {
		t.Fatalf("Set without trusted_proxy_ips = %v, want POLICY_INVALID naming trusted_proxy_ips", err)
	}
	if doc := storedDoc(t, st); doc != want {
		t.Fatalf("refused Set changed the store to %s", doc)
	}
}

// Before client_ip_header existed, an earlier FLM kept it as an unknown
// field without reading it. Without trusted_proxy_ips no header is read
// from anyone, so a value this version refuses keeps that meaning and is
// reported, not fatal. (With trusted proxies it fails closed:
// TestServiceShowStoredMisspelledRestrictionFailsClosed.)
func TestServiceShowStoredInvalidClientIPHeader(t *testing.T) {
	for _, doc := range []string{
		`{"client_ip_header":"X-Real-IP"}`,
		`{"client_ip_header":"True-Client-IP"}`,
	} {
		t.Run(doc, func(t *testing.T) {
			svc, st := newService(t)
			if err := st.Put(t.Context(), []byte(doc), fixedNow); err != nil {
				t.Fatal(err)
			}
			shown, err := svc.Show(t.Context())
			if err != nil {
				t.Fatalf("Show: %v", err)
			}
			if shown.Policy.ClientIPHeader != "" || shown.Policy.Compile().RealIPHeader() {
				t.Fatalf("a refused client_ip_header is believed: %q", shown.Policy.ClientIPHeader)
			}
			if len(shown.Warnings) != 1 || !strings.HasPrefix(shown.Warnings[0], "client_ip_header ") || !strings.Contains(shown.Warnings[0], "is ignored") {
				t.Fatalf("Warnings = %q", shown.Warnings)
			}
			if err := shown.Policy.Validate(); !flmerr.Is(err, flmerr.PolicyInvalid) || !strings.Contains(err.Error(), "client_ip_header:") {
				t.Fatalf("Validate = %v", err)
			}
			if !strings.Contains(string(shown.Policy.Document()), `"client_ip_header":`) {
				t.Fatalf("Document() lost the stored field: %s", shown.Policy.Document())
			}
		})
	}
}
