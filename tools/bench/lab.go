package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// lab holds the processes of a run.
type lab struct {
	dir     string
	keep    bool
	flmBin  string
	fakeBin string
	self    string
	dataDir string
	key     string
	procs   []*exec.Cmd
	notes   []string

	mockURL   string // fast mock (Ollama-shaped, precomputed answers)
	streamURL string // fake Ollama with TTFT and pacing
	bareURL   string // httputil.ReverseProxy → mock
	nginxURL  string // nginx → mock ("" when nginx is not installed)
	famURL    string // vLLM-shaped mock of the families scenario, once started
	flmURL    string
	flmPID    int
}

// hermetic keeps the proxy from detecting engines that happen to run on
// this machine's default ports.
var hermetic = []string{"OLLAMA_HOST=127.0.0.1:9", "VLLM_PORT=9", "LMSTUDIO_API_HOST=127.0.0.1:9", "LLAMA_ARG_PORT=9"}

func repoRoot() (string, error) {
	out, err := exec.Command("go", "env", "GOWORK").Output()
	w := strings.TrimSpace(string(out))
	if err != nil || w == "" || w == "off" {
		return "", errors.New("run the bench from inside the FLM workspace (go env GOWORK is empty)")
	}
	return filepath.Dir(w), nil
}

func newLab(keep bool) (*lab, error) {
	dir, err := os.MkdirTemp("", "flm-bench-")
	if err != nil {
		return nil, err
	}
	l := &lab{dir: dir, keep: keep, dataDir: filepath.Join(dir, "data")}
	ok := false
	defer func() {
		if !ok {
			l.close()
		}
	}()
	root, err := repoRoot()
	if err != nil {
		return nil, err
	}
	if l.self, err = os.Executable(); err != nil {
		return nil, err
	}
	l.flmBin, l.fakeBin = filepath.Join(dir, "flm"), filepath.Join(dir, "fakeengine")
	for bin, pkg := range map[string]string{l.flmBin: "./cli/cmd/flm", l.fakeBin: "./tools/fakeengine"} {
		cmd := exec.Command("go", "build", "-o", bin, pkg)
		cmd.Dir = root
		if out, err := cmd.CombinedOutput(); err != nil {
			return nil, fmt.Errorf("build %s: %v\n%s", pkg, err, out)
		}
	}
	mock, stream, bare := freePort(), freePort(), freePort()
	l.mockURL = fmt.Sprintf("http://127.0.0.1:%d", mock)
	l.streamURL = fmt.Sprintf("http://127.0.0.1:%d", stream)
	l.bareURL = fmt.Sprintf("http://127.0.0.1:%d", bare)
	if err := l.start("mock", l.self, "--role", "mock", "--listen", hostport(mock)); err != nil {
		return nil, err
	}
	if err := l.start("stream-engine", l.fakeBin, "--kind", "ollama", "--addr", hostport(stream), "--ttft", "20ms", "--tps", "200", "--quiet"); err != nil {
		return nil, err
	}
	if err := l.start("bare", l.self, "--role", "bare", "--listen", hostport(bare), "--target", l.mockURL); err != nil {
		return nil, err
	}
	for _, u := range []string{l.mockURL + "/api/version", l.streamURL + "/api/version", l.bareURL + "/api/version"} {
		if err := waitHTTP(u, 10*time.Second); err != nil {
			return nil, err
		}
	}
	if err := l.startNginx(mock); err != nil {
		l.notes = append(l.notes, "nginx row missing: "+err.Error())
	}
	if err := l.startFLM(); err != nil {
		return nil, err
	}
	ok = true
	return l, nil
}

func hostport(p int) string { return "127.0.0.1:" + strconv.Itoa(p) }

func freePort() int {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// start runs a helper process with its output in <dir>/<name>.log.
func (l *lab) start(name, bin string, args ...string) error {
	logf, err := os.Create(filepath.Join(l.dir, name+".log"))
	if err != nil {
		return err
	}
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.Env = append(os.Environ(), hermetic...)
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start %s: %w", name, err)
	}
	l.procs = append(l.procs, cmd)
	return nil
}

func waitHTTP(url string, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		resp, err := http.Get(url)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode < 500 {
				return nil
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	return fmt.Errorf("%s did not answer within %v", url, timeout)
}

// startNginx runs Debian's nginx as "a proxy done well": upstream
// keepalive, no buffering, no logging.
func (l *lab) startNginx(mockPort int) error {
	bin, err := exec.LookPath("nginx")
	if err != nil {
		if _, err2 := os.Stat("/usr/sbin/nginx"); err2 != nil {
			return errors.New("nginx is not installed (apt-get install -y nginx)")
		}
		bin = "/usr/sbin/nginx"
	}
	port := freePort()
	nd := filepath.Join(l.dir, "nginx")
	if err := os.MkdirAll(filepath.Join(nd, "tmp"), 0o755); err != nil {
		return err
	}
	conf := fmt.Sprintf(`worker_processes 2;
pid %[1]s/nginx.pid;
error_log %[1]s/error.log warn;
events { worker_connections 8192; }
http {
  access_log off;
  client_body_temp_path %[1]s/tmp; proxy_temp_path %[1]s/tmp; fastcgi_temp_path %[1]s/tmp; uwsgi_temp_path %[1]s/tmp; scgi_temp_path %[1]s/tmp;
  upstream mock { server 127.0.0.1:%[2]d; keepalive 256; }
  server {
    listen 127.0.0.1:%[3]d;
    location / {
      proxy_pass http://mock;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_buffering off;
    }
  }
}
`, nd, mockPort, port)
	cf := filepath.Join(nd, "nginx.conf")
	if err := os.WriteFile(cf, []byte(conf), 0o644); err != nil {
		return err
	}
	if err := l.start("nginx", bin, "-c", cf, "-g", "daemon off;"); err != nil {
		return err
	}
	l.nginxURL = fmt.Sprintf("http://127.0.0.1:%d", port)
	return waitHTTP(l.nginxURL+"/api/version", 10*time.Second)
}

// flm runs the flm binary against the lab's data dir.
func (l *lab) flm(args ...string) ([]byte, error) {
	cmd := exec.Command(l.flmBin, append([]string{"--data-dir", l.dataDir}, args...)...)
	cmd.Env = append(os.Environ(), hermetic...)
	var errb bytes.Buffer
	cmd.Stderr = &errb
	out, err := cmd.Output()
	if err != nil {
		return out, fmt.Errorf("flm %s: %v: %s", strings.Join(args, " "), err, errb.String())
	}
	return out, nil
}

// startFLM configures FLM with its whole security chain on and starts the
// proxy in the background, as a user would.
func (l *lab) startFLM() error {
	steps := [][]string{
		{"engines", "add", "--kind", "ollama", "--url", l.mockURL, "--id", "mock"},
		{"engines", "add", "--kind", "ollama", "--url", l.streamURL, "--id", "stream"},
		{"security", "policy", "set", "--json", `{"ip_whitelist":["127.0.0.1","::1"],"rate_limit":{"rpm":1000000,"burst":1000000},"ip_rate_limit":{"rpm":1000000,"burst":1000000}}`},
	}
	for _, s := range steps {
		if _, err := l.flm(s...); err != nil {
			return err
		}
	}
	out, err := l.flm("api-keys", "create", "--label", "bench")
	if err != nil {
		return err
	}
	var k struct {
		Data struct {
			PlainKey string `json:"plain_key"`
		}
	}
	if err := json.Unmarshal(out, &k); err != nil {
		return err
	}
	l.key = k.Data.PlainKey
	return l.startProxy(freePort())
}

func (l *lab) startProxy(port int) error {
	out, err := l.flm("proxy", "start", "--port", strconv.Itoa(port))
	if err != nil {
		return err
	}
	var h struct {
		Data struct {
			PID  int `json:"pid"`
			URLs struct {
				Local string `json:"local"`
			} `json:"urls"`
		}
	}
	if err := json.Unmarshal(out, &h); err != nil {
		return err
	}
	l.flmURL, l.flmPID = h.Data.URLs.Local, h.Data.PID
	return nil
}

// flmRSS is the proxy process's resident memory in MB.
func (l *lab) flmRSS() float64 { return rssMB(l.flmPID) }

func rssMB(pid int) float64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if f := strings.Fields(line); len(f) >= 2 && f[0] == "VmRSS:" {
			kb, _ := strconv.ParseFloat(f[1], 64)
			return kb / 1024
		}
	}
	return 0
}

// goroutines reads go_goroutines from the proxy's /metrics (loopback).
func (l *lab) goroutines() int {
	resp, err := http.Get(l.flmURL + "/metrics")
	if err != nil {
		return -1
	}
	defer resp.Body.Close()
	var buf bytes.Buffer
	_, _ = buf.ReadFrom(resp.Body)
	for _, line := range strings.Split(buf.String(), "\n") {
		if v, ok := strings.CutPrefix(line, "go_goroutines "); ok {
			n, _ := strconv.ParseFloat(v, 64)
			return int(n)
		}
	}
	return -1
}

func (l *lab) close() {
	if l.flmPID != 0 {
		_, _ = l.flm("proxy", "stop", "--all")
	}
	for _, p := range l.procs {
		_ = p.Process.Signal(syscall.SIGTERM)
	}
	for _, p := range l.procs {
		done := make(chan struct{})
		go func() { _ = p.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			_ = p.Process.Kill()
		}
	}
	if !l.keep {
		_ = os.RemoveAll(l.dir)
	}
}
