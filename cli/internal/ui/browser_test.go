package ui

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/unjuno/flm/tools/enginefake"
)

// browserPrereqs returns the repository root, the Chromium executable
// ($FLM_CHROMIUM, else /usr/bin/chromium) and node, with playwright-core in
// tools/uitest/node_modules. tools/test.sh installs them; under CI=true a
// missing one fails the test.
func browserPrereqs(t *testing.T) (root, chromium, node string) {
	t.Helper()
	root = repoRoot(t)
	chromium = os.Getenv("FLM_CHROMIUM")
	if chromium == "" {
		chromium = "/usr/bin/chromium"
	}
	node, nodeErr := exec.LookPath("node")
	var missing []string
	if _, err := os.Stat(chromium); err != nil {
		missing = append(missing, "chromium ("+chromium+")")
	}
	if nodeErr != nil {
		missing = append(missing, "node")
	}
	if _, err := os.Stat(filepath.Join(root, "tools/uitest/node_modules/playwright-core/package.json")); err != nil {
		missing = append(missing, "tools/uitest/node_modules (npm ci)")
	}
	if len(missing) > 0 {
		msg := "missing " + strings.Join(missing, ", ") + ": run tools/test.sh (it installs them)"
		if os.Getenv("CI") == "true" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	return root, chromium, node
}

// TestBrowser runs the real `flm ui` and a fake Ollama, and drives the UI
// in Chromium (tools/uitest/ui.mjs, playwright-core): sign in with the
// token, create a key and see it once, revoke it, an invalid policy's
// field error, a valid policy, start a proxy, a streamed chat through it,
// every screen in English and Japanese (screenshots in
// test-artifacts/ui, or $FLM_UI_ARTIFACTS), and no CSP violation.
//
// Chromium, Node and tools/uitest/node_modules come from tools/test.sh;
// under CI=true a missing one fails the test.
func TestBrowser(t *testing.T) {
	root, chromium, node := browserPrereqs(t)
	artifacts := os.Getenv("FLM_UI_ARTIFACTS")
	if artifacts == "" {
		artifacts = filepath.Join(root, "test-artifacts", "ui")
	}
	_ = os.RemoveAll(artifacts)

	bin := filepath.Join(t.TempDir(), "flm")
	if out, err := exec.Command("go", "build", "-o", bin, "github.com/unjuno/flm/cli/cmd/flm").CombinedOutput(); err != nil {
		t.Fatalf("build flm: %v\n%s", err, out)
	}
	eng, err := enginefake.Start(enginefake.Options{Kind: enginefake.Ollama, Models: []enginefake.Model{{Name: "llama3:latest"}},
		TTFT: 50 * time.Millisecond, TokensPerSecond: 40})
	if err != nil {
		t.Fatal(err)
	}
	defer eng.Close()
	dir := t.TempDir()
	env := append(os.Environ(), "OLLAMA_HOST="+strings.TrimPrefix(eng.URL(), "http://"),
		"VLLM_PORT=9", "LMSTUDIO_API_HOST=127.0.0.1:9", "LLAMA_ARG_PORT=9")

	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	ui := exec.CommandContext(ctx, bin, "--data-dir", dir, "ui")
	ui.Env = env
	stdout, err := ui.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	// Its stderr goes to a file, read while it runs.
	errPath := filepath.Join(t.TempDir(), "stderr")
	errFile, err := os.Create(errPath)
	if err != nil {
		t.Fatal(err)
	}
	defer errFile.Close()
	ui.Stderr = errFile
	stderr := fileText(errPath)
	if err := ui.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		_ = ui.Process.Kill()
		_ = ui.Wait()
		// The proxy the browser started runs on its own: stop it.
		stop := exec.Command(bin, "--data-dir", dir, "proxy", "stop", "--all")
		stop.Env = env
		_ = stop.Run()
	}()
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil {
		t.Fatalf("flm ui printed nothing: %v\n%s", err, stderr.String())
	}
	var printed struct {
		Data struct {
			URL        string `json:"url"`
			ListenAddr string `json:"listen_addr"`
		} `json:"data"`
	}
	if err := json.Unmarshal([]byte(line), &printed); err != nil || !strings.Contains(printed.Data.URL, "/#token=") ||
		!strings.HasPrefix(printed.Data.ListenAddr, "127.0.0.1:") {
		t.Fatalf("flm ui printed %q", line)
	}

	run := exec.CommandContext(ctx, node, filepath.Join(root, "tools/uitest/ui.mjs"))
	run.Dir = filepath.Join(root, "tools/uitest")
	run.Env = append(os.Environ(), "FLM_UI_URL="+printed.Data.URL, "PROXY_PORT="+strconv.Itoa(freePort(t)), "WIZARD_PORT="+strconv.Itoa(freePortPair(t)),
		"ARTIFACTS="+artifacts, "CHROMIUM="+chromium)
	out, err := run.Output()
	var seen struct {
		Steps  []string `json:"steps"`
		CSP    []string `json:"csp"`
		Error  string   `json:"error"`
		Answer string   `json:"answer"`
		TTFT   string   `json:"ttft"`
		TPS    string   `json:"tps"`
		Parts  int      `json:"parts"`
		QR     bool     `json:"qr"`
	}
	_ = json.Unmarshal(lastLine(out), &seen)
	if err != nil || seen.Error != "" {
		t.Fatalf("browser run failed: %v\n%s\nsteps: %v\nscreenshots: %s\nflm ui stderr: %s", err, seen.Error, seen.Steps, artifacts, stderr.String())
	}
	if !seen.QR {
		t.Fatal("the browser did not load a QR image with the session header")
	}
	t.Logf("steps %v; answer %q in %d parts, TTFT %s, %s tokens/s; screenshots in %s", seen.Steps, seen.Answer, seen.Parts, seen.TTFT, seen.TPS, artifacts)

	// What the browser did is what the CLI sees: the same stores.
	keys := flmJSON(t, bin, dir, env, "api-keys", "list")
	var kl struct {
		Data struct {
			APIKeys []struct {
				Label     string  `json:"label"`
				RevokedAt *string `json:"revoked_at"`
			} `json:"api_keys"`
		} `json:"data"`
	}
	_ = json.Unmarshal(keys, &kl)
	if len(kl.Data.APIKeys) != 3 || kl.Data.APIKeys[0].Label != "old-laptop" || kl.Data.APIKeys[0].RevokedAt == nil || kl.Data.APIKeys[1].RevokedAt != nil ||
		kl.Data.APIKeys[2].Label != "wizard-key" {
		t.Fatalf("api-keys list after the browser run: %s", keys)
	}
	// The wizard's allowlist step replaced the list; the rest stayed.
	if pol := flmJSON(t, bin, dir, env, "security", "policy", "show"); !bytes.Contains(pol, []byte(`"ip_whitelist":["127.0.0.1","::1","192.168.77.0/24"]`)) ||
		!bytes.Contains(pol, []byte(`"rate_limit":{"rpm":120}`)) {
		t.Fatalf("policy after the browser run: %s", pol)
	}
	// Nothing was applied to the firewall: no rollback script, no log.
	if m, _ := filepath.Glob(filepath.Join(dir, "logs", "security", "firewall-*")); len(m) != 0 {
		t.Fatalf("the browser run applied firewall rules: %v", m)
	}
	if ps := flmJSON(t, bin, dir, env, "proxy", "status"); !bytes.Contains(ps, []byte(`"running":true`)) || !bytes.Contains(ps, []byte(`"mode":"dev-selfsigned"`)) {
		t.Fatalf("proxy status after the browser run: %s", ps)
	}
	// The session token never reaches a log or a file of the data dir.
	token := printed.Data.URL[strings.Index(printed.Data.URL, "#token=")+len("#token="):]
	_ = filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			if b, _ := os.ReadFile(p); bytes.Contains(b, []byte(token)) {
				t.Errorf("%s holds the session token", p)
			}
		}
		return nil
	})
	if strings.Contains(stderr.String(), token) {
		t.Error("flm ui logged the session token")
	}
}

// fileText reads a file each time it is printed.
type fileText string

func (f fileText) String() string { b, _ := os.ReadFile(string(f)); return string(b) }

func flmJSON(t *testing.T, bin, dir string, env []string, args ...string) []byte {
	t.Helper()
	cmd := exec.Command(bin, append([]string{"--data-dir", dir}, args...)...)
	cmd.Env = env
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("flm %v: %v %s", args, err, out)
	}
	return out
}

func lastLine(b []byte) []byte {
	lines := bytes.Split(bytes.TrimSpace(b), []byte("\n"))
	return lines[len(lines)-1]
}

func freePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// freePortPair is a free port whose successor is free too (a TLS mode
// uses port and port+1).
func freePortPair(t *testing.T) int {
	t.Helper()
	for range 20 {
		p := freePort(t)
		if ln, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(p+1)); err == nil {
			ln.Close()
			return p
		}
	}
	t.Fatal("no two free consecutive ports")
	return 0
}

// repoRoot is the workspace root (where go.work is).
func repoRoot(t *testing.T) string {
	t.Helper()
	out, err := exec.Command("go", "env", "GOWORK").Output()
	if err != nil || strings.TrimSpace(string(out)) == "" {
		t.Fatalf("go env GOWORK: %v %s", err, out)
	}
	return filepath.Dir(strings.TrimSpace(string(out)))
}
