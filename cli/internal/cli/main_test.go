package cli

import (
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// hermeticEnv points the default engine endpoints at the discard port,
// where nothing listens, so engines running on this machine (a developer's
// Ollama, llama-server on 8080) cannot leak into the tests.
var hermeticEnv = map[string]string{
	"OLLAMA_HOST":       "127.0.0.1:9",
	"VLLM_PORT":         "9",
	"LMSTUDIO_API_HOST": "127.0.0.1:9",
	"LLAMA_ARG_PORT":    "9",
}

func hermeticEnviron() []string {
	env := os.Environ()
	for k, v := range hermeticEnv {
		env = append(env, k+"="+v)
	}
	return env
}

// result is one flm invocation driven through Main.
type result struct {
	stdout, stderr string
	code           int
}

// data decodes the {"version":"1.0","data":…} envelope into v.
func (r result) data(t *testing.T, v any) {
	t.Helper()
	var env struct {
		Version string          `json:"version"`
		Data    json.RawMessage `json:"data"`
	}
	if err := json.Unmarshal([]byte(r.stdout), &env); err != nil || env.Version != "1.0" {
		t.Fatalf("stdout is not the JSON envelope (%v): %q\nstderr: %s", err, r.stdout, r.stderr)
	}
	if err := json.Unmarshal(env.Data, v); err != nil {
		t.Fatalf("decode data: %v: %s", err, env.Data)
	}
}

// errCode decodes the error object on stderr.
func (r result) errCode(t *testing.T) (code, message string) {
	t.Helper()
	var raw struct {
		Error map[string]string `json:"error"`
	}
	if err := json.Unmarshal([]byte(r.stderr), &raw); err != nil {
		t.Fatalf("stderr is not an error object: %q (stdout %q)", r.stderr, r.stdout)
	}
	if raw.Error["request_id"] == "" || !strings.HasPrefix(raw.Error["request_id"], "req_") {
		t.Fatalf("error without request_id: %s", r.stderr)
	}
	return raw.Error["code"], raw.Error["message"]
}

func flm(t *testing.T, dir string, args ...string) result {
	t.Helper()
	return flmIn(t, dir, "", args...)
}

func flmIn(t *testing.T, dir, stdin string, args ...string) result {
	t.Helper()
	return flmRun(t, dir, stdin, nil, args...)
}

// flmWith runs flm with a hook that adjusts the App before the command.
func flmWith(t *testing.T, dir string, hook func(*App), args ...string) result {
	t.Helper()
	return flmRun(t, dir, "", hook, args...)
}

func flmRun(t *testing.T, dir, stdin string, hook func(*App), args ...string) result {
	t.Helper()
	var out, errb bytes.Buffer
	env := Env{Stdin: strings.NewReader(stdin), Stdout: &out, Stderr: &errb, Getenv: func(k string) string {
		if k == "FLM_DATA_DIR" {
			return dir
		}
		return hermeticEnv[k]
	}}
	code := mainWith(args, env, hook)
	return result{out.String(), errb.String(), code}
}

// ok runs flm and requires success with nothing on stderr.
func ok(t *testing.T, dir string, args ...string) result {
	t.Helper()
	r := flm(t, dir, args...)
	if r.code != 0 || r.stderr != "" {
		t.Fatalf("flm %s: exit %d\nstdout: %s\nstderr: %s", strings.Join(args, " "), r.code, r.stdout, r.stderr)
	}
	return r
}

// fails runs flm and requires the given exit status and error code.
func fails(t *testing.T, dir string, exit int, code string, args ...string) string {
	t.Helper()
	r := flm(t, dir, args...)
	if r.code != exit || r.stdout != "" {
		t.Fatalf("flm %.200s: exit %d (want %d)\nstdout: %s\nstderr: %s", strings.Join(args, " "), r.code, exit, r.stdout, r.stderr)
	}
	got, msg := r.errCode(t)
	if got != code {
		t.Fatalf("flm %.200s: code %s (want %s): %s", strings.Join(args, " "), got, code, msg)
	}
	return msg
}

type issued struct {
	ID        string `json:"id"`
	Label     string `json:"label"`
	PlainKey  string `json:"plain_key"`
	CreatedAt string `json:"created_at"`
	OldKeyID  string `json:"old_key_id"`
}

type keyList struct {
	APIKeys []struct {
		ID        string  `json:"id"`
		Label     string  `json:"label"`
		CreatedAt string  `json:"created_at"`
		RevokedAt *string `json:"revoked_at"`
	} `json:"api_keys"`
}

func createKey(t *testing.T, dir, label string) issued {
	t.Helper()
	var k issued
	ok(t, dir, "api-keys", "create", "--label", label).data(t, &k)
	return k
}

func TestVersionTouchesNoFile(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "never")
	var v struct {
		FLM     string            `json:"flm"`
		CoreAPI string            `json:"core_api"`
		Modules map[string]string `json:"modules"`
	}
	ok(t, dir, "version").data(t, &v)
	// A test binary records no dependency modules; TestVersionOfRealBinary
	// checks every module in the real flm binary.
	if v.FLM == "" || v.CoreAPI == "" || v.Modules["cli"] == "" {
		t.Fatalf("version = %+v", v)
	}
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Fatal("flm version created the data dir")
	}
	if r := ok(t, dir, "--format", "text", "version"); !strings.Contains(r.stdout, "core API") {
		t.Fatalf("text version: %s", r.stdout)
	}
}

func TestConfig(t *testing.T) {
	dir := t.TempDir()
	var v struct{ Key, Value string }
	ok(t, dir, "config", "set", "engine.health_latency_threshold_ms", "1200").data(t, &v)
	ok(t, dir, "config", "get", "engine.health_latency_threshold_ms").data(t, &v)
	if v.Key != "engine.health_latency_threshold_ms" || v.Value != "1200" {
		t.Fatalf("get = %+v", v)
	}
	var list struct{ Config map[string]string }
	ok(t, dir, "config", "list").data(t, &list)
	if list.Config["engine.health_latency_threshold_ms"] != "1200" || list.Config["engine.max_network_failures"] != "3" {
		t.Fatalf("list = %+v", list)
	}
	if r := ok(t, dir, "--format", "text", "config", "list"); !strings.Contains(r.stdout, "KEY") || !strings.Contains(r.stdout, "default") {
		t.Fatalf("text list: %s", r.stdout)
	}

	fails(t, dir, 1, "CONFIG_NOT_SET", "config", "get", "engine.nope")
	fails(t, dir, 1, "INVALID_ARGUMENT", "config", "set", "engine.nope", "1")
	fails(t, dir, 1, "INVALID_ARGUMENT", "config", "set", "engine.health_latency_threshold_ms", "-5")
	ok(t, dir, "config", "get", "engine.health_latency_threshold_ms").data(t, &v)
	if v.Value != "1200" {
		t.Fatal("a refused set changed the value")
	}
}

func TestAPIKeys(t *testing.T) {
	dir := t.TempDir()
	a := createKey(t, dir, "laptop")
	if !strings.HasPrefix(a.PlainKey, "flm_") || a.ID == "" || a.Label != "laptop" || a.CreatedAt == "" {
		t.Fatalf("create = %+v", a)
	}
	r := ok(t, dir, "api-keys", "list")
	if strings.Contains(r.stdout, a.PlainKey) || strings.Contains(r.stdout, a.PlainKey[4:]) || strings.Contains(r.stdout, "hash") {
		t.Fatalf("list shows a key or hash: %s", r.stdout)
	}
	var rot issued
	ok(t, dir, "api-keys", "rotate", a.ID).data(t, &rot)
	if rot.OldKeyID != a.ID || rot.Label != "laptop" || rot.PlainKey == a.PlainKey {
		t.Fatalf("rotate = %+v", rot)
	}
	var rot2 issued
	ok(t, dir, "api-keys", "rotate", rot.ID, "--label", "desktop").data(t, &rot2)
	if rot2.Label != "desktop" {
		t.Fatalf("rotate --label = %+v", rot2)
	}
	var rev struct {
		ID      string
		Revoked bool
	}
	ok(t, dir, "api-keys", "revoke", rot2.ID).data(t, &rev)
	if rev.ID != rot2.ID || !rev.Revoked {
		t.Fatalf("revoke = %+v", rev)
	}
	var list keyList
	ok(t, dir, "api-keys", "list").data(t, &list)
	if len(list.APIKeys) != 3 {
		t.Fatalf("list = %+v", list)
	}
	for _, k := range list.APIKeys {
		if k.RevokedAt == nil {
			t.Fatalf("key %s still active after rotate/revoke", k.ID)
		}
	}
	text := ok(t, dir, "--format", "text", "api-keys", "list").stdout
	if !strings.Contains(text, "LABEL") || !strings.Contains(text, "desktop") || !strings.Contains(text, "revoked") {
		t.Fatalf("text list:\n%s", text)
	}

	fails(t, dir, 1, "API_KEY_NOT_FOUND", "api-keys", "revoke", rot2.ID)
	fails(t, dir, 1, "API_KEY_NOT_FOUND", "api-keys", "revoke", "key_unknown")
	fails(t, dir, 1, "API_KEY_NOT_FOUND", "api-keys", "rotate", a.ID)
	fails(t, dir, 1, "API_KEY_NOT_FOUND", "api-keys", "rotate", "key_unknown")
	fails(t, dir, 1, "INVALID_ARGUMENT", "api-keys", "create", "--label", "")
	msg := fails(t, dir, 1, "INVALID_ARGUMENT", "api-keys", "create", "--label", strings.Repeat("x", 10_000))
	if len(msg) > 300 {
		t.Fatalf("error echoes the whole label: %d bytes", len(msg))
	}
	fails(t, dir, 1, "INVALID_ARGUMENT", "api-keys", "create")
	ok(t, dir, "api-keys", "list").data(t, &list)
	if len(list.APIKeys) != 3 {
		t.Fatal("refused commands changed the key list")
	}
}

func TestPolicy(t *testing.T) {
	dir := t.TempDir()
	type shown struct {
		ID         string          `json:"id"`
		PolicyJSON json.RawMessage `json:"policy_json"`
	}
	var s shown
	ok(t, dir, "security", "policy", "show").data(t, &s)
	if s.ID != "default" || string(s.PolicyJSON) != `{"ip_whitelist":[],"cors":{"allowed_origins":[]}}` {
		t.Fatalf("default policy = %s", s.PolicyJSON)
	}
	good := `{"ip_whitelist":["127.0.0.1","192.168.0.0/16","2001:db8::/32"],"cors":{"allowed_origins":["https://example.com"]},"rate_limit":{"rpm":120,"burst":180},"x_future":{"a":1}}`
	file := filepath.Join(t.TempDir(), "policy.json")
	if err := os.WriteFile(file, []byte(good), 0o600); err != nil {
		t.Fatal(err)
	}
	ok(t, dir, "security", "policy", "set", "--file", file)
	ok(t, dir, "security", "policy", "show").data(t, &s)
	var got, want any
	_ = json.Unmarshal(s.PolicyJSON, &got)
	_ = json.Unmarshal([]byte(good), &want)
	if !jsonEqual(got, want) {
		t.Fatalf("stored policy %s, want %s", s.PolicyJSON, good)
	}
	before := string(s.PolicyJSON)

	big := filepath.Join(t.TempDir(), "big.json")
	_ = os.WriteFile(big, append([]byte(`{"ip_whitelist":[],"pad":"`), append(bytes.Repeat([]byte("a"), 10<<20), '"', '}')...), 0o600)
	bad := map[string]string{
		"cidr /33":        `{"ip_whitelist":["10.0.0.0/33"]}`,
		"octet 300":       `{"ip_whitelist":["300.1.1.1"]}`,
		"null whitelist":  `{"ip_whitelist":null}`,
		"negative rpm":    `{"rate_limit":{"rpm":-1}}`,
		"fractional rpm":  `{"rate_limit":{"rpm":1.5}}`,
		"string rpm":      `{"rate_limit":{"rpm":"60"}}`,
		"wrong type":      `{"ip_whitelist":"10.0.0.1"}`,
		"invalid utf-8":   "{\"ip_whitelist\":[\"\xff\xfe\"]}",
		"trailing":        `{"ip_whitelist":[]} garbage`,
		"not an object":   `[1,2]`,
		"empty":           ``,
		"truncated":       `{"ip_whitelist":[`,
		"bad origin path": `{"cors":{"allowed_origins":["https://a.example/x"]}}`,
	}
	for name, doc := range bad {
		t.Run(name, func(t *testing.T) {
			fails(t, dir, 1, "POLICY_INVALID", "security", "policy", "set", "--json", doc)
		})
	}
	msg := fails(t, dir, 1, "POLICY_INVALID", "security", "policy", "set", "--file", big)
	if len(msg) > 300 {
		t.Fatalf("10 MB error message is %d bytes", len(msg))
	}
	if r := flmIn(t, dir, `{"ip_whitelist":["::1"]}`, "security", "policy", "set", "--file", "-"); r.code != 0 {
		t.Fatalf("policy from stdin: %s", r.stderr)
	}
	ok(t, dir, "security", "policy", "show").data(t, &s)
	if string(s.PolicyJSON) != `{"ip_whitelist":["::1"],"cors":{"allowed_origins":[]}}` {
		t.Fatalf("policy from stdin stored as %s", s.PolicyJSON)
	}
	ok(t, dir, "security", "policy", "set", "--file", file)
	for name, doc := range bad {
		fails(t, dir, 1, "POLICY_INVALID", "security", "policy", "set", "--json", doc)
		if ok(t, dir, "security", "policy", "show").data(t, &s); string(s.PolicyJSON) != before {
			t.Fatalf("refused %s changed the policy to %s", name, s.PolicyJSON)
		}
	}
	fails(t, dir, 1, "INVALID_ARGUMENT", "security", "policy", "set", "--file", filepath.Join(dir, "missing.json"))
	fails(t, dir, 1, "INVALID_ARGUMENT", "security", "policy", "set")
	fails(t, dir, 1, "INVALID_ARGUMENT", "security", "policy", "set", "--file", file, "--json", "{}")
}

func jsonEqual(a, b any) bool {
	x, _ := json.Marshal(a)
	y, _ := json.Marshal(b)
	return bytes.Equal(x, y)
}

func TestUsageErrors(t *testing.T) {
	dir := t.TempDir()
	fails(t, dir, 1, "INVALID_ARGUMENT", "no-such-command")
	fails(t, dir, 1, "INVALID_ARGUMENT", "--format", "yaml", "version")
	r := flm(t, dir, "--format", "text", "config", "get", "engine.nope")
	if r.code != 1 || !strings.HasPrefix(r.stderr, "error: ") || !strings.Contains(r.stderr, "CONFIG_NOT_SET") {
		t.Fatalf("text error: %+v", r)
	}
	if r := flm(t, dir, "--help"); r.code != 0 || !strings.Contains(r.stdout, "api-keys") {
		t.Fatalf("--help: %+v", r)
	}
}

func TestUnusableDataDir(t *testing.T) {
	file := filepath.Join(t.TempDir(), "file")
	_ = os.WriteFile(file, []byte("x"), 0o600)
	msg := fails(t, filepath.Join(file, "flm"), 2, "IO_ERROR", "api-keys", "list")
	if !strings.Contains(msg, file) {
		t.Fatalf("message does not name the path: %s", msg)
	}
}

func TestDamagedDatabase(t *testing.T) {
	dir := t.TempDir()
	createKey(t, dir, "k")
	junk := bytes.Repeat([]byte{0xde, 0xad, 0xbe, 0xef}, 4096)
	path := filepath.Join(dir, "security.db")
	for _, s := range []string{"-wal", "-shm"} {
		_ = os.Remove(path + s)
	}
	if err := os.WriteFile(path, junk, 0o600); err != nil {
		t.Fatal(err)
	}
	msg := fails(t, dir, 2, "DB_ERROR", "api-keys", "list")
	if !strings.Contains(msg, path) {
		t.Fatalf("message does not name %s: %s", path, msg)
	}
	r := flm(t, dir, "check")
	var rep struct{ Status string }
	r.data(t, &rep)
	if r.code != 1 || rep.Status != "error" || !strings.Contains(r.stdout, path) {
		t.Fatalf("check on a damaged DB: exit %d %s", r.code, r.stdout)
	}
}

func TestCompletion(t *testing.T) {
	for _, sh := range []string{"bash", "zsh", "fish"} {
		r := ok(t, t.TempDir(), "completion", sh)
		flag := "--"
		if sh == "fish" {
			flag = "-l "
		}
		for _, w := range []string{"api-keys", "rotate", flag + "label", flag + "format"} {
			if !strings.Contains(r.stdout, w) {
				t.Errorf("%s completion lacks %q", sh, w)
			}
		}
	}
}

func TestBashCompletionRuns(t *testing.T) {
	script := ok(t, t.TempDir(), "completion", "bash").stdout
	f := filepath.Join(t.TempDir(), "c.sh")
	_ = os.WriteFile(f, []byte(script+`
COMP_WORDS=(flm api-keys ro); COMP_CWORD=2; _flm; echo "${COMPREPLY[@]}"
COMP_WORDS=(flm api-keys rotate --l); COMP_CWORD=3; _flm; echo "${COMPREPLY[@]}"
`), 0o600)
	out, err := exec.Command("bash", f).CombinedOutput()
	if err != nil || string(out) != "rotate\n--label\n" {
		t.Fatalf("bash completion: %v: %q", err, out)
	}
}
