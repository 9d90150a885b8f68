package policy

import (
	"bytes"
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"testing"

	"github.com/unjuno/flm/core/flmerr"
)

type parseCase struct {
	name string
	doc  string
	// want is a substring of the error message; "" means the document is valid.
	want string
	// check, when set, inspects the policy of a valid document.
	check func(t *testing.T, p Policy)
}

func rl(rpm, burst int) *RateLimit { return &RateLimit{RPM: rpm, Burst: burst} }

func wantPolicy(want Policy) func(*testing.T, Policy) {
	return func(t *testing.T, got Policy) {
		t.Helper()
		if !reflect.DeepEqual(got, want) {
			t.Errorf("policy = %#v\nwant %#v", got, want)
		}
	}
}

func wantDocument(want string) func(*testing.T, Policy) {
	return func(t *testing.T, p Policy) {
		t.Helper()
		if got := string(p.Document()); got != want {
			t.Errorf("Document() = %s\nwant %s", got, want)
		}
	}
}

func wantOrigins(want ...string) func(*testing.T, Policy) {
	return func(t *testing.T, p Policy) {
		t.Helper()
		if !reflect.DeepEqual(p.CORS.AllowedOrigins, want) {
			t.Errorf("allowed_origins = %q, want %q", p.CORS.AllowedOrigins, want)
		}
	}
}

// parseCases is shared with FuzzParse as its seed corpus.
var parseCases = []parseCase{
	// Document-level rules.
	{name: "default document", doc: DefaultDocument, check: wantPolicy(Policy{})},
	{name: "empty object", doc: `{}`, check: wantDocument(DefaultDocument)},
	{name: "whitespace around", doc: " \t\r\n{ \"ip_whitelist\" : [ ] }\n ", check: wantPolicy(Policy{})},
	{name: "empty document", doc: ``, want: "document is empty"},
	{name: "only whitespace", doc: " \n", want: "document is empty"},
	{name: "root array", doc: `[]`, want: "document must be a JSON object, got an array"},
	{name: "root string", doc: `"x"`, want: `document must be a JSON object, got "x"`},
	{name: "root null", doc: `null`, want: "document must be a JSON object, got null"},
	{name: "root number", doc: `12`, want: "document must be a JSON object, got 12"},
	{name: "trailing garbage", doc: `{} x`, want: "unexpected data after the JSON object at byte 3"},
	{name: "two objects", doc: `{}{}`, want: "unexpected data after the JSON object at byte 2"},
	{name: "trailing comma", doc: `{"a":1,}`, want: "expected a string object key"},
	{name: "unterminated object", doc: `{"a":1`, want: "expected ',' or '}'"},
	{name: "unterminated object after brace", doc: `{`, want: "unexpected end of document, expected an object key"},
	{name: "missing colon", doc: `{"a" 1}`, want: "expected ':'"},
	{name: "missing value", doc: `{"a":}`, want: "unexpected character '}'"},
	{name: "value at end", doc: `{"a":`, want: "unexpected end of document"},
	{name: "unquoted key", doc: `{a:1}`, want: "expected a string object key, got character 'a'"},
	{name: "single quotes", doc: `{'a':1}`, want: "expected a string object key"},
	{name: "byte order mark", doc: "\uFEFF{}", want: "byte order mark"},
	{name: "array missing comma", doc: `{"a":[1 2]}`, want: "expected ',' or ']'"},
	{name: "array trailing comma", doc: `{"a":[1,]}`, want: "unexpected character ']'"},
	{name: "bad literal", doc: `{"a":tru}`, want: "invalid literal (expected true)"},
	{name: "bad literal null", doc: `{"a":nul`, want: "expected null"},
	{name: "literals", doc: `{"x_a":[true,false,null]}`, check: wantDocument(`{"ip_whitelist":[],"cors":{"allowed_origins":[]},"x_a":[true,false,null]}`)},
	{name: "numbers", doc: `{"x_a":[0,-0,1.5,-2e10,3E+2,4e-1,1.0e0,1e01,123456789012345678901234567890]}`, check: wantDocument(`{"ip_whitelist":[],"cors":{"allowed_origins":[]},"x_a":[0,-0,1.5,-2e10,3E+2,4e-1,1.0e0,1e01,123456789012345678901234567890]}`)},
	{name: "leading zero", doc: `{"a":01}`, want: "leading zeros"},
	{name: "lone minus", doc: `{"a":-}`, want: "invalid number"},
	{name: "dot without digits", doc: `{"a":1.}`, want: "after '.'"},
	{name: "exponent without digits", doc: `{"a":1e}`, want: "exponent"},
	{name: "plus sign", doc: `{"a":+1}`, want: "unexpected character '+'"},
	{name: "invalid UTF-8 in string", doc: "{\"a\":\"\xff\xfe\"}", want: "document is not valid UTF-8 (first bad byte at offset 6)"},
	{name: "invalid UTF-8 in key", doc: "{\"\xc3\x28\":1}", want: "not valid UTF-8"},
	{name: "UTF-8 text kept", doc: `{"x_名前":"値 ✓ <&>"}`, check: wantDocument(`{"ip_whitelist":[],"cors":{"allowed_origins":[]},"x_名前":"値 ✓ <&>"}`)},
	{name: "raw control character", doc: "{\"a\":\"x\ny\"}", want: "control character in string"},
	{name: "raw control character after escape", doc: "{\"a\":\"\\n\ty\"}", want: "control character in string"},
	{name: "escapes kept verbatim", doc: `{"x_a":"\"\\\/\b\f\n\r\t\u00e9\ud83d\ude00\\ud800"}`, check: wantDocument(`{"ip_whitelist":[],"cors":{"allowed_origins":[]},"x_a":"\"\\\/\b\f\n\r\t\u00e9\ud83d\ude00\\ud800"}`)},
	{name: "escaped key decoded", doc: `{"x_\u0066uture\n":1}`, check: wantDocument(`{"ip_whitelist":[],"cors":{"allowed_origins":[]},"x_future\n":1}`)},
	{name: "control key re-escaped", doc: `{"x_\u0001\b\f\r\t\\\"":1}`, check: wantDocument(`{"ip_whitelist":[],"cors":{"allowed_origins":[]},"x_\u0001\b\f\r\t\\\"":1}`)},
	{name: "invalid escape", doc: `{"a":"\x"}`, want: "invalid escape"},
	{name: "short unicode escape", doc: `{"a":"\u12"}`, want: `invalid \u escape`},
	{name: "bad hex in unicode escape", doc: `{"a":"\u12g4"}`, want: `invalid \u escape`},
	{name: "lone high surrogate", doc: `{"a":"\ud800"}`, want: "lone UTF-16 surrogate"},
	{name: "high surrogate then letter", doc: `{"a":"\ud800\u0041"}`, want: "lone UTF-16 surrogate"},
	{name: "lone low surrogate", doc: `{"a":"\udc00"}`, want: "lone UTF-16 surrogate"},
	{name: "unterminated string", doc: `{"a":"abc`, want: "unterminated string"},
	{name: "unterminated escaped string", doc: `{"a":"a\n`, want: "unterminated string"},
	{name: "backslash at end", doc: `{"a":"a\`, want: "unterminated string"},
	{name: "duplicate top-level key", doc: `{"ip_whitelist":[],"ip_whitelist":["10.0.0.1"]}`, want: `duplicate key "ip_whitelist" at byte 19`},
	{name: "duplicate unknown key", doc: `{"x":1,"x":2}`, want: `duplicate key "x"`},
	{name: "duplicate key via escape", doc: `{"a":1,"\u0061":2}`, want: `duplicate key "a"`},
	{name: "duplicate nested key", doc: `{"cors":{"allowed_origins":[],"allowed_origins":["*"]}}`, want: `cors: duplicate key "allowed_origins"`},
	{name: "duplicate deep key", doc: `{"future":{"x":[{"k":1,"k":2}]}}`, want: `future.x[0]: duplicate key "k"`},
	{name: "duplicate key under odd name", doc: `{"a b":{"k":1,"k":2}}`, want: `["a b"]: duplicate key "k"`},
	{name: "duplicate in rate_limit", doc: `{"rate_limit":{"rpm":1,"rpm":2}}`, want: `rate_limit: duplicate key "rpm"`},
	{name: "depth 32 ok", doc: nest(31)},
	{name: "depth 33", doc: nest(32), want: "nesting deeper than 32 levels"},
	{name: "depth 100", doc: nest(99), want: "nesting deeper than 32 levels"},
	{name: "depth 100 arrays", doc: `{"a":` + strings.Repeat("[", 100) + strings.Repeat("]", 100) + `}`, want: "nesting deeper than 32 levels"},
	{name: "10000 entries", doc: `{"ip_whitelist":[` + strings.TrimSuffix(strings.Repeat(`"10.0.0.1",`, 10000), ",") + `]}`},
	{name: "10001 entries", doc: `{"ip_whitelist":[` + strings.TrimSuffix(strings.Repeat(`"10.0.0.1",`, 10001), ",") + `]}`, want: "ip_whitelist: more than 10000 entries"},
	{name: "10001 unknown entries", doc: `{"x":[` + strings.TrimSuffix(strings.Repeat(`0,`, 10001), ",") + `]}`, want: "x: more than 10000 entries"},

	// ip_whitelist and trusted_proxy_ips.
	{name: "ip_whitelist v4 v6 cidr", doc: `{"ip_whitelist":["10.0.0.0/8","192.168.1.10","2001:db8::/32","::1","::ffff:10.1.2.3","::ffff:10.0.0.0/104","0.0.0.0/0","::/0"]}`,
		check: wantPolicy(Policy{IPWhitelist: []string{"10.0.0.0/8", "192.168.1.10", "2001:db8::/32", "::1", "::ffff:10.1.2.3", "::ffff:10.0.0.0/104", "0.0.0.0/0", "::/0"}})},
	{name: "ip_whitelist host bits kept as written", doc: `{"ip_whitelist":["192.168.1.7/24"]}`, check: wantPolicy(Policy{IPWhitelist: []string{"192.168.1.7/24"}})},
	{name: "ip_whitelist absent", doc: `{"cors":{}}`, check: wantPolicy(Policy{})},
	{name: "ip_whitelist null", doc: `{"ip_whitelist":null}`, want: "ip_whitelist: must be an array of IP addresses or CIDRs, got null"},
	{name: "ip_whitelist string", doc: `{"ip_whitelist":"10.0.0.1"}`, want: `ip_whitelist: must be an array of IP addresses or CIDRs, got "10.0.0.1"`},
	{name: "ip_whitelist object", doc: `{"ip_whitelist":{}}`, want: "got an object"},
	{name: "ip_whitelist number entry", doc: `{"ip_whitelist":[10]}`, want: "ip_whitelist[0]: must be a string (an IP address or CIDR), got 10"},
	{name: "ip_whitelist null entry", doc: `{"ip_whitelist":["10.0.0.1",null]}`, want: "ip_whitelist[1]: must be a string (an IP address or CIDR), got null"},
	{name: "ip_whitelist bad prefix length", doc: `{"ip_whitelist":["10.0.0.1","10.0.0.0/33"]}`, want: `ip_whitelist[1]: "10.0.0.0/33" is not an IP address or CIDR`},
	{name: "ip_whitelist v6 prefix 129", doc: `{"ip_whitelist":["::/129"]}`, want: `ip_whitelist[0]: "::/129" is not an IP address or CIDR`},
	{name: "ip_whitelist octet 300", doc: `{"ip_whitelist":["300.1.1.1"]}`, want: `ip_whitelist[0]: "300.1.1.1" is not an IP address or CIDR`},
	{name: "ip_whitelist empty string", doc: `{"ip_whitelist":[""]}`, want: `ip_whitelist[0]: "" is not an IP address or CIDR`},
	{name: "ip_whitelist hostname", doc: `{"ip_whitelist":["localhost"]}`, want: `"localhost" is not an IP address or CIDR`},
	{name: "ip_whitelist spaces", doc: `{"ip_whitelist":[" 10.0.0.1"]}`, want: `" 10.0.0.1" is not an IP address or CIDR`},
	{name: "ip_whitelist leading zero octet", doc: `{"ip_whitelist":["010.0.0.1"]}`, want: "is not an IP address or CIDR"},
	{name: "ip_whitelist zone", doc: `{"ip_whitelist":["fe80::1%eth0"]}`, want: `ip_whitelist[0]: "fe80::1%eth0" has an IPv6 zone; zones are not allowed`},
	{name: "ip_whitelist zone in prefix", doc: `{"ip_whitelist":["fe80::%eth0/64"]}`, want: "zones are not allowed"},
	{name: "ip_whitelist long value cut", doc: `{"ip_whitelist":["` + strings.Repeat("a", 5000) + `"]}`, want: `"` + strings.Repeat("a", 64) + `"...`},
	{name: "trusted_proxy_ips", doc: `{"trusted_proxy_ips":["127.0.0.1","fd00::/8"]}`, check: wantPolicy(Policy{TrustedProxyIPs: []string{"127.0.0.1", "fd00::/8"}})},
	{name: "trusted_proxy_ips empty", doc: `{"trusted_proxy_ips":[]}`, check: wantDocument(DefaultDocument)},
	{name: "trusted_proxy_ips null", doc: `{"trusted_proxy_ips":null}`, want: "trusted_proxy_ips: must be an array"},
	{name: "trusted_proxy_ips bad", doc: `{"trusted_proxy_ips":["1.2.3"]}`, want: `trusted_proxy_ips[0]: "1.2.3" is not an IP address or CIDR`},

	// cors.
	{name: "origins", doc: `{"cors":{"allowed_origins":["https://a.example","http://localhost:5173","http://127.0.0.1:8080","https://[::1]:8443","https://a_b.example"]}}`,
		check: wantOrigins("https://a.example", "http://localhost:5173", "http://127.0.0.1:8080", "https://[::1]:8443", "https://a_b.example")},
	{name: "origin normalized", doc: `{"cors":{"allowed_origins":["HTTPS://A.Example","Http://LOCALHOST:3000"]}}`, check: wantOrigins("https://a.example", "http://localhost:3000")},
	{name: "origin default port dropped", doc: `{"cors":{"allowed_origins":["https://a.example:443","http://a.example:80","http://a.example:443"]}}`,
		check: wantOrigins("https://a.example", "http://a.example", "http://a.example:443")},
	{name: "origin IPv6 canonical", doc: `{"cors":{"allowed_origins":["http://[0:0:0:0:0:0:0:1]","http://[2001:DB8::1]:80","http://[::ffff:1.2.3.4]"]}}`,
		check: wantOrigins("http://[::1]", "http://[2001:db8::1]", "http://[::ffff:102:304]")},
	{name: "origin wildcard", doc: `{"cors":{"allowed_origins":["*"]}}`, check: wantOrigins("*")},
	{name: "origin trailing slash", doc: `{"cors":{"allowed_origins":["https://a.example/"]}}`, want: `cors.allowed_origins[0]: "https://a.example/" is not an origin (scheme://host[:port] or "*"): an origin has no path`},
	{name: "origin path", doc: `{"cors":{"allowed_origins":["https://a.example/path"]}}`, want: "an origin has no path"},
	{name: "origin query", doc: `{"cors":{"allowed_origins":["https://a.example?x"]}}`, want: "an origin has no path, query or fragment"},
	{name: "origin fragment", doc: `{"cors":{"allowed_origins":["https://a.example#x"]}}`, want: "an origin has no path, query or fragment"},
	{name: "origin ftp", doc: `{"cors":{"allowed_origins":["ftp://x"]}}`, want: `"ftp://x" is not an origin (scheme://host[:port] or "*"): the scheme must be http or https`},
	{name: "origin userinfo", doc: `{"cors":{"allowed_origins":["https://user@x"]}}`, want: "an origin has no user info"},
	{name: "origin port too big", doc: `{"cors":{"allowed_origins":["https://x:99999"]}}`, want: "the port must be a number between 1 and 65535"},
	{name: "origin port 65536", doc: `{"cors":{"allowed_origins":["https://x:65536"]}}`, want: "the port must be a number between 1 and 65535"},
	{name: "origin port 0", doc: `{"cors":{"allowed_origins":["https://x:0"]}}`, want: "the port must be a number"},
	{name: "origin port leading zero", doc: `{"cors":{"allowed_origins":["https://x:080"]}}`, want: "the port must be a number"},
	{name: "origin port empty", doc: `{"cors":{"allowed_origins":["https://x:"]}}`, want: "the port is empty"},
	{name: "origin port letters", doc: `{"cors":{"allowed_origins":["https://x:http"]}}`, want: "the port must be a number"},
	{name: "origin port 65535", doc: `{"cors":{"allowed_origins":["https://x:65535"]}}`, check: wantOrigins("https://x:65535")},
	{name: "origin no scheme", doc: `{"cors":{"allowed_origins":["a.example"]}}`, want: "must look like scheme://host[:port]"},
	{name: "origin empty host", doc: `{"cors":{"allowed_origins":["https://"]}}`, want: "the host is empty"},
	{name: "origin empty host with port", doc: `{"cors":{"allowed_origins":["https://:8080"]}}`, want: "the host is empty"},
	{name: "origin empty string", doc: `{"cors":{"allowed_origins":[""]}}`, want: "must look like scheme://host[:port]"},
	{name: "origin null", doc: `{"cors":{"allowed_origins":["null"]}}`, want: "must look like scheme://host[:port]"},
	{name: "origin wildcard subdomain", doc: `{"cors":{"allowed_origins":["https://*.example"]}}`, want: "the host contains '*'"},
	{name: "origin space", doc: `{"cors":{"allowed_origins":[" https://a.example"]}}`, want: "the scheme must be http or https"},
	{name: "origin IDN", doc: `{"cors":{"allowed_origins":["https://例え.jp"]}}`, want: "xn-- form"},
	{name: "origin empty label", doc: `{"cors":{"allowed_origins":["https://a..example"]}}`, want: "the host has an empty label"},
	{name: "origin trailing dot", doc: `{"cors":{"allowed_origins":["https://a.example."]}}`, want: "the host has an empty label"},
	{name: "origin long host", doc: `{"cors":{"allowed_origins":["https://` + strings.Repeat("a", 254) + `"]}}`, want: "longer than 253"},
	{name: "origin bad IPv4", doc: `{"cors":{"allowed_origins":["http://300.1.1.1"]}}`, want: "the host is not a valid IPv4 address"},
	{name: "origin IPv4 shorthand", doc: `{"cors":{"allowed_origins":["http://127.1"]}}`, want: "the host is not a valid IPv4 address"},
	{name: "origin hex IPv4", doc: `{"cors":{"allowed_origins":["http://1.2.3.0x4"]}}`, want: "the host is not a valid IPv4 address"},
	{name: "origin bare IPv6", doc: `{"cors":{"allowed_origins":["http://::1"]}}`, want: "the host contains ':'"},
	{name: "origin unclosed IPv6", doc: `{"cors":{"allowed_origins":["http://[::1"]}}`, want: "missing its closing ']'"},
	{name: "origin bad IPv6", doc: `{"cors":{"allowed_origins":["http://[1.2.3.4]"]}}`, want: "not a valid IPv6 address"},
	{name: "origin IPv6 zone", doc: `{"cors":{"allowed_origins":["http://[fe80::1%25eth0]"]}}`, want: "not a valid IPv6 address"},
	{name: "origin IPv6 junk after", doc: `{"cors":{"allowed_origins":["http://[::1]x"]}}`, want: "unexpected characters after the IPv6 address"},
	{name: "origin IPv6 empty port", doc: `{"cors":{"allowed_origins":["http://[::1]:"]}}`, want: "the port is empty"},
	{name: "origin not a string", doc: `{"cors":{"allowed_origins":[true]}}`, want: "cors.allowed_origins[0]: must be a string, got true"},
	{name: "cors null", doc: `{"cors":null}`, want: "cors: must be an object"},
	{name: "cors array", doc: `{"cors":["*"]}`, want: "cors: must be an object like"},
	{name: "allowed_origins null", doc: `{"cors":{"allowed_origins":null}}`, want: "cors.allowed_origins: must be an array of origins"},
	{name: "allowed_origins string", doc: `{"cors":{"allowed_origins":"*"}}`, want: `cors.allowed_origins: must be an array of origins ("https://host[:port]") or ["*"], got "*"`},
	{name: "cors extensions kept", doc: `{"cors":{"x_max_age":600,"allowed_origins":["https://a.example"],"x_headers":["x"]}}`,
		check: wantDocument(`{"ip_whitelist":[],"cors":{"allowed_origins":["https://a.example"],"x_max_age":600,"x_headers":["x"]}}`)},
	{name: "cors key wrong case", doc: `{"cors":{"Allowed_Origins":["*"]}}`, want: `cors: unknown field "Allowed_Origins": keys are case-sensitive; did you mean "allowed_origins"?`},

	// rate_limit and ip_rate_limit.
	{name: "rate limits", doc: `{"rate_limit":{"rpm":60,"burst":10},"ip_rate_limit":{"rpm":1000000}}`, check: wantPolicy(Policy{RateLimit: rl(60, 10), IPRateLimit: rl(1000000, 0)})},
	{name: "rate limit zero", doc: `{"rate_limit":{"rpm":0,"burst":0}}`, check: wantDocument(`{"ip_whitelist":[],"cors":{"allowed_origins":[]},"rate_limit":{"rpm":0}}`)},
	{name: "rate limit burst max", doc: `{"ip_rate_limit":{"burst":1000000,"rpm":1}}`, check: wantPolicy(Policy{IPRateLimit: rl(1, 1000000)})},
	{name: "rpm negative", doc: `{"rate_limit":{"rpm":-1}}`, want: "rate_limit.rpm: must be an integer between 0 and 1000000, got -1"},
	{name: "rpm minus zero", doc: `{"rate_limit":{"rpm":-0}}`, want: "got -0"},
	{name: "rpm fraction", doc: `{"rate_limit":{"rpm":1.5}}`, want: "rate_limit.rpm: must be an integer between 0 and 1000000, got 1.5"},
	{name: "rpm exponent", doc: `{"rate_limit":{"rpm":1e3}}`, want: "got 1e3"},
	{name: "rpm decimal zero", doc: `{"rate_limit":{"rpm":60.0}}`, want: "got 60.0"},
	{name: "rpm string", doc: `{"rate_limit":{"rpm":"60"}}`, want: `rate_limit.rpm: must be an integer between 0 and 1000000, got "60"`},
	{name: "rpm too big", doc: `{"rate_limit":{"rpm":1000001}}`, want: "got 1000001"},
	{name: "rpm huge", doc: `{"rate_limit":{"rpm":99999999999999999999999}}`, want: "got 99999999999999999999999"},
	{name: "rpm null", doc: `{"ip_rate_limit":{"rpm":null}}`, want: "ip_rate_limit.rpm: must be an integer between 0 and 1000000, got null"},
	{name: "rpm bool", doc: `{"rate_limit":{"rpm":true}}`, want: "got true"},
	{name: "rpm array", doc: `{"rate_limit":{"rpm":[60]}}`, want: "got an array"},
	{name: "rpm missing", doc: `{"rate_limit":{"burst":10}}`, want: "rate_limit.rpm: required"},
	{name: "rpm missing empty", doc: `{"ip_rate_limit":{}}`, want: "ip_rate_limit.rpm: required"},
	{name: "burst negative", doc: `{"ip_rate_limit":{"rpm":5,"burst":-3}}`, want: "ip_rate_limit.burst: must be an integer between 0 and 1000000, got -3"},
	{name: "burst fraction", doc: `{"rate_limit":{"rpm":5,"burst":0.5}}`, want: "rate_limit.burst: must be an integer"},
	{name: "rate limit unknown key", doc: `{"rate_limit":{"rpm":60,"window":"1m"}}`, want: `rate_limit: unknown field "window"; the known fields are rpm, burst (extension fields start with "x_")`},
	{name: "rate limit key wrong case", doc: `{"rate_limit":{"RPM":60}}`, want: `rate_limit: unknown field "RPM"`},
	{name: "rate limit null", doc: `{"rate_limit":null}`, want: "rate_limit: must be an object like"},
	{name: "ip rate limit number", doc: `{"ip_rate_limit":60}`, want: "ip_rate_limit: must be an object like"},

	// Unknown fields.
	{name: "extensions round-trip", doc: `{"ip_whitelist":[],"x_future":{"x":[1,2]}}`, check: wantDocument(`{"ip_whitelist":[],"cors":{"allowed_origins":[]},"x_future":{"x":[1,2]}}`)},
	{name: "extensions compacted in order", doc: `{ "x_z" : [ 1 , { "b" : null , "a" : "s p" } ] , "ip_whitelist" : [ "::1" ] , "x_a" : {} , "x_e" : [ ] }`,
		check: wantDocument(`{"ip_whitelist":["::1"],"cors":{"allowed_origins":[]},"x_z":[1,{"b":null,"a":"s p"}],"x_a":{},"x_e":[]}`)},
	{name: "known key wrong case", doc: `{"IP_Whitelist":["10.0.0.1"]}`, want: `unknown field "IP_Whitelist": keys are case-sensitive; did you mean "ip_whitelist"?`},
	{name: "known key folded", doc: `{"CORS":{}}`, want: `did you mean "cors"?`},
	{name: "known key unicode fold", doc: `{"ip_whiteliſt":[]}`, want: `did you mean "ip_whitelist"?`},
	{name: "known key via escape", doc: `{"ip\u005fwhitelist":["10.0.0.1"]}`, check: wantPolicy(Policy{IPWhitelist: []string{"10.0.0.1"}})},

	// A misspelled field fails closed: refused, naming the field it meant.
	{name: "misspelled ip_whitelist", doc: `{"ip_whitelst":["10.0.0.0/8"]}`, want: `unknown field "ip_whitelst"; did you mean "ip_whitelist"?`},
	{name: "ip_allowlist", doc: `{"ip_allowlist":["10.0.0.0/8"]}`, want: `unknown field "ip_allowlist"; did you mean "ip_whitelist"?`},
	{name: "allowed_ips", doc: `{"allowed_ips":["10.0.0.0/8"]}`, want: `did you mean "ip_whitelist"?`},
	{name: "camel case whitelist", doc: `{"ipWhitelist":["10.0.0.0/8"]}`, want: `unknown field "ipWhitelist"; did you mean "ip_whitelist"?`},
	{name: "typo next to the real field", doc: `{"ip_whitelist":["10.0.0.1"],"ip_whiltelist":["10.0.0.2"]}`, want: `unknown field "ip_whiltelist"; did you mean "ip_whitelist"?`},
	{name: "trusted_proxies", doc: `{"trusted_proxies":["127.0.0.1"]}`, want: `unknown field "trusted_proxies"; did you mean "trusted_proxy_ips"?`},
	{name: "trusted_proxy_ip", doc: `{"trusted_proxy_ip":["127.0.0.1"]}`, want: `did you mean "trusted_proxy_ips"?`},
	{name: "client_ip_header swapped letters", doc: `{"client_ip_hedaer":"X-Real-IP"}`, want: `did you mean "client_ip_header"?`},
	{name: "real_ip_header", doc: `{"real_ip_header":"X-Real-IP"}`, want: `did you mean "client_ip_header"?`},
	{name: "cors_origins", doc: `{"cors_origins":["https://a.example"]}`, want: `unknown field "cors_origins"; did you mean "cors.allowed_origins"?`},
	{name: "top-level origins", doc: `{"allowed_origins":["*"]}`, want: `did you mean "cors.allowed_origins"?`},
	{name: "top-level rpm", doc: `{"rpm":60}`, want: `unknown field "rpm"; did you mean "rate_limit.rpm"?`},
	{name: "top-level requests_per_minute", doc: `{"requests_per_minute":60}`, want: `did you mean "rate_limit.rpm"?`},
	{name: "ratelimit", doc: `{"ratelimit":{"rpm":60}}`, want: `did you mean "rate_limit"?`},
	{name: "ip_rate_limt", doc: `{"ip_rate_limt":{"rpm":60}}`, want: `did you mean "ip_rate_limit"?`},
	{name: "extension spelled x-", doc: `{"x-note":"hi"}`, want: `unknown field "x-note"; did you mean "x_note"?`},
	{name: "extension spelled X_", doc: `{"X_note":"hi"}`, want: `did you mean "x_note"?`},
	{name: "nothing close", doc: `{"future":{"x":[1,2]}}`, want: `unknown field "future"; the known fields are ip_whitelist, trusted_proxy_ips, client_ip_header, cors, rate_limit, ip_rate_limit (extension fields start with "x_")`},
	{name: "empty key", doc: `{"":1}`, want: `unknown field ""; the known fields are`},
	{name: "huge unknown key", doc: `{"` + strings.Repeat("k", 100000) + `":1}`, want: `unknown field "kkkk`},
	{name: "cors origins", doc: `{"cors":{"origins":["https://a.example"]}}`, want: `cors: unknown field "origins"; did you mean "allowed_origins"?`},
	{name: "cors allowed_orgins", doc: `{"cors":{"allowed_orgins":["*"]}}`, want: `cors: unknown field "allowed_orgins"; did you mean "allowed_origins"?`},
	{name: "cors nothing close", doc: `{"cors":{"allowed_origins":[],"max_age":600}}`, want: `cors: unknown field "max_age"; the known fields are allowed_origins (extension fields start with "x_")`},
	{name: "rate_limit requests_per_minute", doc: `{"rate_limit":{"requests_per_minute":60}}`, want: `rate_limit: unknown field "requests_per_minute"; did you mean "rpm"?`},
	{name: "ip_rate_limit brust", doc: `{"ip_rate_limit":{"rpm":60,"brust":10}}`, want: `ip_rate_limit: unknown field "brust"; did you mean "burst"?`},
	{name: "rate_limit unicode fold", doc: `{"rate_limit":{"rpm":60,"burſt":10}}`, want: `rate_limit: unknown field "burſt": keys are case-sensitive; did you mean "burst"?`},
	{name: "client_ip_header wrong case", doc: `{"Client_IP_Header":"X-Real-IP"}`, want: `unknown field "Client_IP_Header": keys are case-sensitive; did you mean "client_ip_header"?`},
	{name: "extensions at every level", doc: `{"x_a":1,"cors":{"x_b":[ 1 ],"allowed_origins":[]},"rate_limit":{"x_c":{ "d" : null },"rpm":1},"ip_rate_limit":{"rpm":2,"x_d":"s"},"x_":true}`,
		check: wantDocument(`{"ip_whitelist":[],"cors":{"allowed_origins":[],"x_b":[1]},"rate_limit":{"rpm":1,"x_c":{"d":null}},"ip_rate_limit":{"rpm":2,"x_d":"s"},"x_a":1,"x_":true}`)},
	{name: "extension values may hold any keys", doc: `{"x_a":{"IP_Whitelist":1,"ip_whitelst":2}}`, check: wantDocument(`{"ip_whitelist":[],"cors":{"allowed_origins":[]},"x_a":{"IP_Whitelist":1,"ip_whitelst":2}}`)},
	{name: "duplicate extension", doc: `{"x_a":1,"x_a":2}`, want: `duplicate key "x_a" at byte 9`},

	// client_ip_header.
	{name: "client_ip_header X-Real-IP", doc: `{"trusted_proxy_ips":["127.0.0.1"],"client_ip_header":"X-Real-IP"}`,
		check: wantPolicy(Policy{TrustedProxyIPs: []string{"127.0.0.1"}, ClientIPHeader: HeaderXRealIP})},
	{name: "client_ip_header any case", doc: `{"client_ip_header":"x-REAL-ip","trusted_proxy_ips":["::1"]}`,
		check: wantDocument(`{"ip_whitelist":[],"trusted_proxy_ips":["::1"],"client_ip_header":"X-Real-IP","cors":{"allowed_origins":[]}}`)},
	{name: "client_ip_header X-Forwarded-For", doc: `{"trusted_proxy_ips":["127.0.0.1"],"client_ip_header":"X-FORWARDED-FOR"}`,
		check: wantPolicy(Policy{TrustedProxyIPs: []string{"127.0.0.1"}, ClientIPHeader: HeaderXForwardedFor})},
	{name: "client_ip_header X-Forwarded-For without proxies", doc: `{"client_ip_header":"X-Forwarded-For"}`, check: wantPolicy(Policy{ClientIPHeader: HeaderXForwardedFor})},
	{name: "client_ip_header X-Real-IP without proxies", doc: `{"client_ip_header":"X-Real-IP"}`,
		want: `client_ip_header: "X-Real-IP" is read only from a peer listed in trusted_proxy_ips, which is empty; add the address of the reverse proxy that sets it`},
	{name: "client_ip_header X-Real-IP with empty proxies", doc: `{"client_ip_header":"X-Real-IP","trusted_proxy_ips":[]}`, want: `"X-Real-IP" is read only from a peer listed in trusted_proxy_ips`},
	{name: "client_ip_header other header", doc: `{"trusted_proxy_ips":["127.0.0.1"],"client_ip_header":"Forwarded"}`, want: `client_ip_header: must be "X-Forwarded-For" or "X-Real-IP", got "Forwarded"`},
	{name: "client_ip_header CF-Connecting-IP", doc: `{"trusted_proxy_ips":["127.0.0.1"],"client_ip_header":"CF-Connecting-IP"}`, want: `got "CF-Connecting-IP"`},
	{name: "client_ip_header underscores", doc: `{"trusted_proxy_ips":["127.0.0.1"],"client_ip_header":"X_Real_IP"}`, want: `got "X_Real_IP"`},
	{name: "client_ip_header padded", doc: `{"trusted_proxy_ips":["127.0.0.1"],"client_ip_header":" X-Real-IP"}`, want: `got " X-Real-IP"`},
	{name: "client_ip_header empty", doc: `{"client_ip_header":""}`, want: `client_ip_header: must be "X-Forwarded-For" or "X-Real-IP", got ""`},
	{name: "client_ip_header null", doc: `{"client_ip_header":null}`, want: `got null`},
	{name: "client_ip_header number", doc: `{"client_ip_header":5}`, want: `got 5`},
	{name: "client_ip_header list", doc: `{"client_ip_header":["X-Real-IP"]}`, want: `got an array`},

	// Everything at once.
	{name: "full policy", doc: `{"ip_whitelist":["10.0.0.0/8","2001:db8::/32"],"trusted_proxy_ips":["127.0.0.1"],"cors":{"allowed_origins":["https://A.example"]},"rate_limit":{"rpm":60,"burst":10},"ip_rate_limit":{"rpm":600},"x_note":1,"client_ip_header":"x-real-ip"}`,
		check: wantDocument(`{"ip_whitelist":["10.0.0.0/8","2001:db8::/32"],"trusted_proxy_ips":["127.0.0.1"],"client_ip_header":"X-Real-IP","cors":{"allowed_origins":["https://a.example"]},"rate_limit":{"rpm":60,"burst":10},"ip_rate_limit":{"rpm":600},"x_note":1}`)},
}

// nest returns a document whose root holds n nested objects (depth n+1).
func nest(n int) string {
	return strings.Repeat(`{"x_a":`, n) + "{}" + strings.Repeat("}", n)
}

func TestParse(t *testing.T) {
	for _, tc := range parseCases {
		t.Run(tc.name, func(t *testing.T) {
			p, err := Parse([]byte(tc.doc))
			if tc.want != "" {
				checkInvalid(t, err, tc.want)
				return
			}
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			if tc.check != nil {
				tc.check(t, p)
			}
			checkRoundTrip(t, p)
		})
	}
}

func checkInvalid(t *testing.T, err error, want string) {
	t.Helper()
	if err == nil {
		t.Fatalf("Parse succeeded, want error containing %q", want)
	}
	var fe *flmerr.Error
	if !errors.As(err, &fe) || fe.Code != flmerr.PolicyInvalid {
		t.Fatalf("error %v (%T) is not a POLICY_INVALID *flmerr.Error", err, err)
	}
	if !strings.Contains(err.Error(), want) {
		t.Fatalf("error = %q\nwant it to contain %q", err, want)
	}
	if n := len(err.Error()); n > 400 {
		t.Fatalf("error message is %d bytes; it echoes too much input: %q", n, err)
	}
}

func checkRoundTrip(t *testing.T, p Policy) {
	t.Helper()
	doc := p.Document()
	q, err := Parse(doc)
	if err != nil {
		t.Fatalf("Parse(Document()) failed: %v\ndocument: %s", err, doc)
	}
	if !reflect.DeepEqual(p, q) {
		t.Fatalf("round trip changed the policy:\n%#v\n%#v", p, q)
	}
	if again := q.Document(); !bytes.Equal(doc, again) {
		t.Fatalf("Document not a fixed point:\n%s\n%s", doc, again)
	}
	if !json.Valid(doc) {
		t.Fatalf("Document is not valid JSON: %s", doc)
	}
}

func TestParseSizeLimit(t *testing.T) {
	pad := func(n int) []byte {
		// {"x_pad":"aaa...a"} of exactly n bytes.
		return []byte(`{"x_pad":"` + strings.Repeat("a", n-12) + `"}`)
	}
	t.Run("10 MB", func(t *testing.T) {
		_, err := Parse(pad(10 << 20))
		checkInvalid(t, err, "document is 10485760 bytes; the limit is 1048576")
	})
	t.Run("one byte over", func(t *testing.T) {
		_, err := Parse(pad(MaxDocumentBytes + 1))
		checkInvalid(t, err, "document is 1048577 bytes; the limit is 1048576")
	})
	t.Run("at the limit but too big once normalized", func(t *testing.T) {
		_, err := Parse(pad(MaxDocumentBytes))
		checkInvalid(t, err, "bytes once normalized; the limit is 1048576")
	})
	t.Run("fits once normalized", func(t *testing.T) {
		doc := pad(MaxDocumentBytes - len(DefaultDocument))
		p, err := Parse(doc)
		if err != nil {
			t.Fatal(err)
		}
		checkRoundTrip(t, p)
	})
}

func TestDefault(t *testing.T) {
	if got := string(Default().Document()); got != DefaultDocument {
		t.Fatalf("Default().Document() = %s, want %s", got, DefaultDocument)
	}
	p, err := Parse([]byte(DefaultDocument))
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(p, Default()) {
		t.Fatalf("Parse(DefaultDocument) = %#v, want Default()", p)
	}
	if err := Default().Validate(); err != nil {
		t.Fatal(err)
	}
}

func TestEffectiveBurst(t *testing.T) {
	for _, tc := range []struct {
		r    RateLimit
		want int
	}{
		{RateLimit{RPM: 60}, 60},
		{RateLimit{RPM: 60, Burst: 5}, 5},
		{RateLimit{RPM: 60, Burst: 600}, 600},
		{RateLimit{}, 0},
	} {
		if got := tc.r.EffectiveBurst(); got != tc.want {
			t.Errorf("%+v.EffectiveBurst() = %d, want %d", tc.r, got, tc.want)
		}
	}
}

func TestJSON(t *testing.T) {
	const doc = `{"ip_whitelist":["10.0.0.1"],"cors":{"allowed_origins":["*"]},"rate_limit":{"rpm":5},"x_future":true}`
	var p Policy
	if err := json.Unmarshal([]byte(doc), &p); err != nil {
		t.Fatal(err)
	}
	out, err := json.Marshal(struct {
		P Policy `json:"p"`
	}{p})
	if err != nil {
		t.Fatal(err)
	}
	if want := `{"p":` + doc + `}`; string(out) != want {
		t.Fatalf("Marshal = %s, want %s", out, want)
	}
	if err := json.Unmarshal([]byte(`{"ip_whitelist":["x"]}`), &p); !flmerr.Is(err, flmerr.PolicyInvalid) {
		t.Fatalf("Unmarshal of an invalid policy: err = %v, want POLICY_INVALID", err)
	}
}

func TestValidateHandBuilt(t *testing.T) {
	for _, tc := range []struct {
		name string
		p    Policy
		want string
	}{
		{"valid", Policy{IPWhitelist: []string{"10.0.0.1"}, RateLimit: rl(1, 0)}, ""},
		{"bad ip", Policy{IPWhitelist: []string{"nope"}}, `ip_whitelist[0]: "nope"`},
		{"bad origin", Policy{CORS: CORS{AllowedOrigins: []string{"https://x/"}}}, "cors.allowed_origins[0]"},
		{"bad rpm", Policy{IPRateLimit: rl(-5, 0)}, "ip_rate_limit.rpm: must be an integer between 0 and 1000000, got -5"},
		{"invalid UTF-8 string", Policy{TrustedProxyIPs: []string{"\xff"}}, "trusted_proxy_ips[0]: \"\uFFFD\""},
		{"client_ip_header", Policy{TrustedProxyIPs: []string{"10.0.0.1"}, ClientIPHeader: HeaderXRealIP}, ""},
		{"client_ip_header unknown", Policy{TrustedProxyIPs: []string{"10.0.0.1"}, ClientIPHeader: "True-Client-IP"}, `client_ip_header: must be "X-Forwarded-For" or "X-Real-IP", got "True-Client-IP"`},
		{"X-Real-IP without trusted proxy", Policy{ClientIPHeader: HeaderXRealIP}, "is read only from a peer listed in trusted_proxy_ips"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.p.Validate()
			if tc.want == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			checkInvalid(t, err, tc.want)
		})
	}
}

func TestMessagesEchoLittle(t *testing.T) {
	long := strings.Repeat("é", 200)
	for _, doc := range []string{
		`{"` + long + `":{"k":1,"k":2}}`,
		`{"rate_limit":{"rpm":` + strings.Repeat("9", 500) + `}}`,
		`{"rate_limit":{"` + long + `":1}}`,
		`{"cors":{"allowed_origins":["https://` + long + `"]}}`,
		`{"` + strings.Repeat("k", 300) + `":` + strings.Repeat(`{"`+strings.Repeat("q", 70)+`":`, 40) + `}`,
	} {
		_, err := Parse([]byte(doc))
		if err == nil {
			t.Fatalf("Parse succeeded for %.80s", doc)
		}
		if n := len(err.Error()); n > 300 {
			t.Errorf("message is %d bytes: %q", n, err)
		}
	}
}
