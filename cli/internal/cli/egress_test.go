package cli

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/unjuno/flm/cli/internal/store"
	"github.com/unjuno/flm/core/proxyctl"
	"github.com/unjuno/flm/proxy/egress"
	"github.com/unjuno/flm/proxy/egress/egresstest"
	"github.com/unjuno/flm/tools/enginefake"
)

// remoteEngineName is known to no resolver but the test SOCKS server's.
const remoteEngineName = "gpu-box.flm-egress-test.invalid"

type fgProxy struct {
	handle proxyctl.Handle
	stderr func() string
}

type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string { l.mu.Lock(); defer l.mu.Unlock(); return l.b.String() }

// runForegroundProxy runs `flm proxy start --foreground args…` in this
// process with extra environment variables. It returns the printed handle,
// or the failed run's result (handle zero).
func runForegroundProxy(t *testing.T, dir string, env map[string]string, args ...string) (fgProxy, result) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	outR, outW := io.Pipe()
	errb := &lockedBuffer{}
	exited := make(chan result, 1)
	go func() {
		e := Env{Stdin: strings.NewReader(""), Stdout: outW, Stderr: errb, Getenv: func(k string) string {
			if k == "FLM_DATA_DIR" {
				return dir
			}
			if v, ok := env[k]; ok {
				return v
			}
			return hermeticEnv[k]
		}}
		code := mainWith(append([]string{"proxy", "start", "--foreground"}, args...), e, func(a *App) { a.ctx = ctx })
		_ = outW.Close()
		exited <- result{stderr: errb.String(), code: code}
	}()
	lines := make(chan []byte, 1)
	go func() {
		line, _ := bufio.NewReader(outR).ReadBytes('\n')
		lines <- line
		_, _ = io.Copy(io.Discard, outR)
	}()
	select {
	case line := <-lines:
		if len(line) == 0 {
			cancel()
			return fgProxy{}, <-exited
		}
		var out struct{ Data proxyctl.Handle }
		if err := json.Unmarshal(line, &out); err != nil || !out.Data.Running {
			t.Fatalf("proxy start printed %s", line)
		}
		t.Cleanup(func() {
			cancel()
			select {
			case <-exited:
			case <-time.After(10 * time.Second):
				t.Error("the foreground proxy did not stop")
			}
		})
		return fgProxy{handle: out.Data, stderr: errb.String}, result{}
	case <-time.After(30 * time.Second):
		cancel()
		t.Fatal("the proxy neither started nor failed")
	}
	return fgProxy{}, result{}
}

func post(t *testing.T, url, key, body string) (int, []byte) {
	t.Helper()
	req, _ := http.NewRequest("POST", url, strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+key)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b
}

func envelopeCode(body []byte) string {
	var e struct{ Error struct{ Code string } }
	_ = json.Unmarshal(body, &e)
	return e.Error.Code
}

func closedPort(t *testing.T) string {
	t.Helper()
	return fmt.Sprintf("127.0.0.1:%d", freePort(t))
}

func shortEgressWait(t *testing.T) {
	old := egressCheckWait
	egressCheckWait = 10 * time.Millisecond
	t.Cleanup(func() { egressCheckWait = old })
}

// TestEgressJourney is issue 11 as a user lives it: a remote engine added
// by a name only the SOCKS server resolves, the proxy started with socks5
// egress, chat through it, detection through it, the SOCKS server killed
// (502 egress_unavailable, detection honest, nothing dialed directly, the
// loopback engine unaffected) and back (service resumes, no restart).
func TestEgressJourney(t *testing.T) {
	dir := t.TempDir()
	remote := fake(t, enginefake.Options{Kind: enginefake.VLLM, Addr: "127.0.0.2:0", Models: []enginefake.Model{{Name: "big"}}})
	local := fake(t, enginefake.Options{Kind: enginefake.VLLM, Models: []enginefake.Model{{Name: "small"}}})
	_, rport, _ := net.SplitHostPort(remote.Addr())
	socks := &egresstest.Server{Hosts: map[string]string{remoteEngineName: "127.0.0.2"}}
	if err := socks.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(socks.Stop)
	ok(t, dir, "engines", "add", "--kind", "vllm", "--url", "http://"+net.JoinHostPort(remoteEngineName, rport), "--id", "gpu")
	ok(t, dir, "engines", "add", "--kind", "vllm", "--url", local.URL(), "--id", "here")
	k := createKey(t, dir, "k")

	p, r := runForegroundProxy(t, dir, nil, "--port", fmt.Sprint(freePort(t)), "--egress-mode", "socks5", "--socks5-endpoint", socks.Addr())
	if p.handle.ID == "" {
		t.Fatalf("proxy start failed: %+v", r)
	}
	eg := p.handle.Egress
	if eg.Mode != proxyctl.EgressSOCKS5 || eg.SOCKS5Endpoint != socks.Addr() || eg.FailOpen || eg.FellBack || eg.LastCheck == nil {
		t.Fatalf("handle egress %+v", eg)
	}
	chat := func(model string) (int, []byte) {
		return post(t, p.handle.URLs.Local+"/v1/chat/completions", k.PlainKey, `{"model":"`+model+`","messages":[{"role":"user","content":"hi"}],"stream":true}`)
	}
	if code, body := chat("flm://gpu/big"); code != 200 || !bytes.Contains(body, []byte("[DONE]")) {
		t.Fatalf("chat through SOCKS: %d %s", code, body)
	}
	if reqs := socks.Requests(); len(reqs) == 0 || !strings.HasPrefix(reqs[len(reqs)-1], remoteEngineName+":") {
		t.Fatalf("SOCKS server saw %v", reqs)
	}
	var status []proxyctl.Handle
	ok(t, dir, "proxy", "status").data(t, &status)
	if len(status) != 1 || status[0].Egress.Mode != proxyctl.EgressSOCKS5 || status[0].Egress.LastCheck == nil {
		t.Fatalf("proxy status egress: %+v", status)
	}
	var det detected
	ok(t, dir, "engines", "detect", "--fresh", "--engine", "gpu").data(t, &det)
	if len(det.Engines) != 1 || det.Engines[0].Status.State != "running-healthy" {
		t.Fatalf("detect through the stored egress: %+v", det)
	}

	socks.Stop()
	before := remote.Connections()
	code, body := chat("flm://gpu/big")
	if code != 502 || envelopeCode(body) != "egress_unavailable" {
		t.Fatalf("with SOCKS down: %d %s", code, body)
	}
	if code, body := chat("flm://here/small"); code != 200 {
		t.Fatalf("loopback engine with SOCKS down: %d %s", code, body)
	}
	det = detected{}
	ok(t, dir, "engines", "detect", "--fresh", "--engine", "gpu").data(t, &det)
	// Down by the detector's rules (degraded, then error-network after 3
	// failures), and why: the egress, not the engine.
	if len(det.Engines) != 1 || det.Engines[0].Status.State == "running-healthy" || !strings.Contains(det.Engines[0].Status.Reason, "SOCKS5 egress") {
		t.Fatalf("detect with SOCKS down claims %+v", det)
	}
	if n := remote.Connections() - before; n != 0 {
		t.Fatalf("the remote engine was dialed directly %d time(s)", n)
	}

	if err := socks.Start(); err != nil {
		t.Fatal(err)
	}
	if code, body := chat("flm://gpu/big"); code != 200 {
		t.Fatalf("after the SOCKS server came back: %d %s", code, body)
	}
}

func TestEgressStartFailsClosed(t *testing.T) {
	shortEgressWait(t)
	dir := t.TempDir()
	endpoint := closedPort(t)
	_, r := runForegroundProxy(t, dir, nil, "--port", fmt.Sprint(freePort(t)), "--egress-mode", "socks5", "--socks5-endpoint", endpoint)
	if r.code != 1 {
		t.Fatalf("exit %d: %s", r.code, r.stderr)
	}
	if code, msg := r.errCode(t); code != "PROXY_INVALID_CONFIG" || !strings.Contains(msg, endpoint) || !strings.Contains(msg, "--egress-fail-open") {
		t.Fatalf("%s: %s", code, msg)
	}
	var status []proxyctl.Handle
	ok(t, dir, "proxy", "status").data(t, &status)
	if len(status) != 0 {
		t.Fatalf("a proxy that did not start is listed: %+v", status)
	}
	d, err := store.Open(context.Background(), dir, store.Config)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	if _, found, err := (store.Handles{DB: d}).LatestProfile(context.Background()); err != nil || found {
		t.Fatalf("a failed start stored its profile (%v)", err)
	}
}

func TestEgressWrongCredentials(t *testing.T) {
	shortEgressWait(t)
	dir := t.TempDir()
	socks := &egresstest.Server{User: "flm", Password: "right-one"}
	if err := socks.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(socks.Stop)
	args := []string{"--port", fmt.Sprint(freePort(t)), "--egress-mode", "socks5", "--socks5-endpoint", socks.Addr()}
	_, r := runForegroundProxy(t, dir, map[string]string{egress.EnvUsername: "flm", egress.EnvPassword: "wrong-pass-123"}, args...)
	code, msg := r.errCode(t)
	if r.code != 1 || code != "PROXY_INVALID_CONFIG" || !strings.Contains(msg, "credentials") || !strings.Contains(msg, egress.EnvPassword) {
		t.Fatalf("exit %d %s: %s", r.code, code, msg)
	}
	if strings.Contains(r.stderr, "wrong-pass-123") {
		t.Fatal("the password was printed")
	}
	_, r = runForegroundProxy(t, dir, map[string]string{egress.EnvUsername: "flm"}, args...)
	if code, msg := r.errCode(t); code != "PROXY_INVALID_CONFIG" || !strings.Contains(msg, egress.EnvPassword) {
		t.Fatalf("half the credentials: %s %s", code, msg)
	}
	p, r := runForegroundProxy(t, dir, map[string]string{egress.EnvUsername: "flm", egress.EnvPassword: "right-one"}, args...)
	if p.handle.ID == "" {
		t.Fatalf("right credentials: %+v", r)
	}
}

func TestEgressFailOpen(t *testing.T) {
	shortEgressWait(t)
	dir := t.TempDir()
	endpoint := closedPort(t)
	eng := fake(t, enginefake.Options{Kind: enginefake.VLLM, Models: []enginefake.Model{{Name: "m"}}})
	ok(t, dir, "engines", "add", "--kind", "vllm", "--url", eng.URL(), "--id", "e")
	p, r := runForegroundProxy(t, dir, nil, "--port", fmt.Sprint(freePort(t)), "--egress-mode", "tor", "--socks5-endpoint", endpoint, "--egress-fail-open")
	if p.handle.ID == "" {
		t.Fatalf("fail-open start failed: %+v", r)
	}
	if eg := p.handle.Egress; !eg.FailOpen || !eg.FellBack || eg.Mode != proxyctl.EgressTor || eg.SOCKS5Endpoint != endpoint {
		t.Fatalf("handle egress %+v", eg)
	}
	if s := p.stderr(); !strings.Contains(s, "warning:") || !strings.Contains(s, endpoint) || !strings.Contains(s, "DIRECTLY") {
		t.Fatalf("no warning on stderr: %s", s)
	}
	sec, err := store.Open(context.Background(), dir, store.Security)
	if err != nil {
		t.Fatal(err)
	}
	defer sec.Close()
	if n, err := sec.Count(context.Background(), "audit_logs", "event_type = 'egress_fail_open' AND severity = 'high'"); err != nil || n != 1 {
		t.Fatalf("%d egress_fail_open audit rows (%v)", n, err)
	}
}

// TestEgressCheckResult: `flm check`'s egress line judges the stored
// egress by a fresh handshake; a proxy that fell back says so after a
// background start.
func TestEgressCheckResult(t *testing.T) {
	dir := t.TempDir()
	socks := &egresstest.Server{}
	if err := socks.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(socks.Stop)
	var got checkResult
	flmWith(t, dir, func(a *App) { got = egressCheckResult(context.Background(), a) }, "version")
	if got.Status != "ok" || !strings.Contains(got.Message, "direct") {
		t.Fatalf("no profile: %+v", got)
	}
	d, err := store.Open(context.Background(), dir, store.Config)
	if err != nil {
		t.Fatal(err)
	}
	save := func(e proxyctl.Egress) {
		cfg := proxyctl.DefaultConfig()
		cfg.Egress = e
		if err := (store.Handles{DB: d}).Save(context.Background(), proxyctl.Handle{ID: "proxy-8080", Port: 8080}, cfg); err != nil {
			t.Fatal(err)
		}
	}
	for _, c := range []struct {
		e      proxyctl.Egress
		status string
	}{
		{proxyctl.Egress{Mode: proxyctl.EgressSOCKS5, SOCKS5Endpoint: socks.Addr()}, "ok"},
		{proxyctl.Egress{Mode: proxyctl.EgressTor, SOCKS5Endpoint: closedPort(t)}, "error"},
		{proxyctl.Egress{Mode: proxyctl.EgressSOCKS5, SOCKS5Endpoint: closedPort(t), FailOpen: true}, "warning"},
	} {
		save(c.e)
		flmWith(t, dir, func(a *App) { got = egressCheckResult(context.Background(), a) }, "version")
		if got.Status != c.status || !strings.Contains(got.Message, string(c.e.Mode)) {
			t.Fatalf("%+v: %+v", c.e, got)
		}
	}
	d.Close()

	var errb bytes.Buffer
	a := &App{Env: Env{Stderr: &errb}}
	warnEgressFallback(a, proxyctl.Handle{Egress: proxyctl.Egress{Mode: proxyctl.EgressTor, SOCKS5Endpoint: "127.0.0.1:9050", FailOpen: true}})
	if errb.Len() != 0 {
		t.Fatalf("warned without a fallback: %s", errb.String())
	}
	warnEgressFallback(a, proxyctl.Handle{Egress: proxyctl.Egress{Mode: proxyctl.EgressTor, SOCKS5Endpoint: "127.0.0.1:9050", FailOpen: true, FellBack: true}})
	if !strings.Contains(errb.String(), "127.0.0.1:9050") || !strings.Contains(errb.String(), "DIRECTLY") {
		t.Fatalf("warning %q", errb.String())
	}
}
