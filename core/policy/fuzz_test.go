package policy

import (
	"bytes"
	"encoding/json"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/unjuno/flm/core/flmerr"
)

// stdReading is the policy as a plain json.Unmarshal reads it: keys matched
// case-insensitively (with Unicode folding), the last duplicate winning,
// lone surrogates turned into U+FFFD. Whatever Parse accepts, this reader
// must see the same policy.
type stdReading struct {
	IPWhitelist     []string `json:"ip_whitelist"`
	TrustedProxyIPs []string `json:"trusted_proxy_ips"`
	ClientIPHeader  string   `json:"client_ip_header"`
	CORS            struct {
		AllowedOrigins []string `json:"allowed_origins"`
	} `json:"cors"`
	RateLimit   *RateLimit `json:"rate_limit"`
	IPRateLimit *RateLimit `json:"ip_rate_limit"`
}

func FuzzParse(f *testing.F) {
	for _, tc := range parseCases {
		if len(tc.doc) < 4096 {
			f.Add([]byte(tc.doc))
		}
	}
	f.Add([]byte(`{"ip_whitelist":["10.0.0.1"],"ip_whitelst":["10.0.0.2"],"cors":{"allowed_origins":[],"max_age":1}}`))
	f.Add([]byte(`{"ip_whiteli\u017ft":["10.0.0.1"]}`))
	f.Add([]byte(`{"x_\ud800":1,"x_\udc00":2}`))
	f.Fuzz(func(t *testing.T, doc []byte) {
		stored, lerr := parse(doc, true)
		p, err := Parse(doc)
		if err != nil {
			if !flmerr.Is(err, flmerr.PolicyInvalid) {
				t.Fatalf("error without POLICY_INVALID: %v", err)
			}
			// Loading a stored document forgives unknown fields and nothing else.
			if lerr == nil && len(stored.ignored()) == 0 {
				t.Fatalf("Parse refused %q (%v), but the stored reading found nothing to ignore", doc, err)
			}
			if lerr == nil {
				checkStoredStable(t, stored)
			}
			return
		}
		if lerr != nil || !reflect.DeepEqual(p, stored) {
			t.Fatalf("Parse accepted %q, but reading it as stored gave %v / %#v", doc, lerr, stored)
		}
		// Whatever we accept must be JSON every other reader accepts, and
		// read the same way.
		var std stdReading
		if err := json.Unmarshal(doc, &std); err != nil {
			t.Fatalf("accepted a document encoding/json rejects: %q: %v", doc, err)
		}
		if !slices.Equal(std.IPWhitelist, p.IPWhitelist) || !slices.Equal(std.TrustedProxyIPs, p.TrustedProxyIPs) ||
			!strings.EqualFold(std.ClientIPHeader, p.ClientIPHeader) ||
			len(std.CORS.AllowedOrigins) != len(p.CORS.AllowedOrigins) ||
			!reflect.DeepEqual(std.RateLimit, p.RateLimit) || !reflect.DeepEqual(std.IPRateLimit, p.IPRateLimit) {
			t.Fatalf("encoding/json reads %q differently:\n%+v\n%#v", doc, std, p)
		}
		out := p.Document()
		q, err := Parse(out)
		if err != nil {
			t.Fatalf("Parse(Document()) failed: %v\ninput:    %q\ndocument: %q", err, doc, out)
		}
		if again := q.Document(); !bytes.Equal(out, again) {
			t.Fatalf("Document not stable:\n%q\n%q", out, again)
		}
		if !reflect.DeepEqual(p, q) {
			t.Fatalf("round trip changed the policy:\n%#v\n%#v", p, q)
		}
		_ = p.Compile()
	})
}

// checkStoredStable: a stored document with unknown fields reads back the
// same, and Validate refuses it.
func checkStoredStable(t *testing.T, p Policy) {
	t.Helper()
	q, err := parse(p.Document(), true)
	if err != nil || !reflect.DeepEqual(p, q) {
		t.Fatalf("stored policy does not read back: %v\n%#v\n%#v", err, p, q)
	}
	if err := p.Validate(); !flmerr.Is(err, flmerr.PolicyInvalid) {
		t.Fatalf("Validate of a policy with ignored fields = %v", err)
	}
	_ = p.Compile()
}
