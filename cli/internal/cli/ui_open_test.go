package cli

import (
	"context"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"
)

// `flm ui --open` must not put the sign-in URL (its one-time token) on a
// command line: argv is readable by every local user (ps,
// /proc/*/cmdline), who could race the user to the sign-in. The opener
// gets the path of a 0600 file that redirects to the URL, and the file
// goes away.
func TestUIOpenKeepsTheTokenOffTheCommandLine(t *testing.T) {
	dir := t.TempDir()
	var mu sync.Mutex
	var argv []string
	var file, mode string
	var fileText []byte
	old := uiOpener
	t.Cleanup(func() { uiOpener = old })
	var cancel context.CancelFunc
	uiOpener = func(a []string) error {
		mu.Lock()
		defer mu.Unlock()
		argv = append([]string(nil), a...)
		file = a[len(a)-1]
		if st, err := os.Stat(file); err == nil {
			mode = st.Mode().Perm().String()
			if dst, err := os.Stat(filepath.Dir(file)); err == nil {
				mode += " " + dst.Mode().Perm().String()
			}
		}
		fileText, _ = os.ReadFile(file)
		cancel() // the UI stops right away: Run returns
		return nil
	}
	r := flmWith(t, dir, func(a *App) {
		var ctx context.Context
		ctx, cancel = context.WithTimeout(context.Background(), 20*time.Second)
		a.ctx = ctx
	}, "ui", "--open")
	if r.code != 0 {
		t.Fatalf("flm ui --open: exit %d\n%s\n%s", r.code, r.stdout, r.stderr)
	}
	var printed struct {
		URL string `json:"url"`
	}
	r.data(t, &printed)
	i := strings.Index(printed.URL, "#token=")
	if i < 0 {
		t.Fatalf("printed %q", printed.URL)
	}
	token := printed.URL[i+len("#token="):]
	mu.Lock()
	defer mu.Unlock()
	if len(argv) == 0 {
		t.Fatal("the opener was not called")
	}
	joined := strings.Join(argv, " ")
	if strings.Contains(joined, token) || strings.Contains(joined, "token") || strings.Contains(joined, "http") {
		t.Fatalf("the opener's argv carries the URL: %q", argv)
	}
	want := map[string]string{"linux": "xdg-open", "darwin": "open", "windows": "rundll32"}[runtime.GOOS]
	if want != "" && argv[0] != want {
		t.Errorf("opener %q, want %s", argv[0], want)
	}
	if !strings.Contains(string(fileText), `content="0;url=`+printed.URL+`"`) || strings.Contains(string(fileText), "<script") {
		t.Fatalf("the file does not redirect to the URL (or runs script): %s", fileText)
	}
	if runtime.GOOS != "windows" && mode != "-rw------- -rwx------" {
		t.Errorf("file and directory modes %q, want -rw------- -rwx------", mode)
	}
	if rel, err := filepath.Rel(dir, file); err != nil || strings.HasPrefix(rel, "..") {
		t.Errorf("the file %s is not in the data dir %s", file, dir)
	}
	// Run returned (the UI stopped): the file and its directory are gone.
	if _, err := os.Stat(filepath.Dir(file)); !os.IsNotExist(err) {
		t.Fatalf("%s still exists after flm ui stopped: %v", file, err)
	}
	if strings.Contains(r.stderr, token) {
		t.Fatal("stderr carries the token")
	}
}

// While the UI runs, the file is removed after its lifetime.
func TestUIOpenFileIsRemovedAfterItsLifetime(t *testing.T) {
	dir := t.TempDir()
	old := uiOpener
	t.Cleanup(func() { uiOpener = old })
	var mu sync.Mutex
	var argv []string
	uiOpener = func(a []string) error { mu.Lock(); argv = a; mu.Unlock(); return nil }
	const url = "http://127.0.0.1:1234/#token=" + "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
	cleanup, err := openViaFile(dir, url+`"><script>x</script>`, 200*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	defer cleanup()
	mu.Lock()
	file := argv[len(argv)-1]
	mu.Unlock()
	b, err := os.ReadFile(file)
	if err != nil || strings.Contains(string(b), "<script>") || !strings.Contains(string(b), "&#34;&gt;&lt;script&gt;") {
		t.Fatalf("the URL is not escaped in the file (%v): %s", err, b)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		if _, err := os.Stat(filepath.Dir(file)); os.IsNotExist(err) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s still exists 5 s after its 200 ms lifetime", file)
		}
		time.Sleep(20 * time.Millisecond)
	}
	// Nothing else is left in the data dir.
	if ents, _ := os.ReadDir(dir); len(ents) != 0 {
		t.Fatalf("left in the data dir: %v", ents)
	}
	// An opener that fails leaves no file behind either.
	uiOpener = func([]string) error { return os.ErrNotExist }
	if _, err := openViaFile(dir, url, time.Minute); err == nil {
		t.Fatal("a failing opener was not reported")
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 0 {
		t.Fatalf("left in the data dir after a failing opener: %v", ents)
	}
}

// Review 3: the UI listens on loopback only, and `flm ui` has no way to
// change that: its only options are --port and --open (a new option must
// be reviewed here), address-like flags are refused before anything
// listens, and the address it prints is 127.0.0.1.
func TestUIListensOnLoopbackOnly(t *testing.T) {
	typ := reflect.TypeOf(UICmd{})
	var fields []string
	for i := range typ.NumField() {
		fields = append(fields, typ.Field(i).Name+" "+typ.Field(i).Type.String())
	}
	if strings.Join(fields, ", ") != "Port int, Open bool" {
		t.Fatalf("flm ui has options %v: review whether any lets the UI listen beyond loopback", fields)
	}
	dir := t.TempDir()
	for _, args := range [][]string{{"--bind", "0.0.0.0"}, {"--host", "0.0.0.0"}, {"--listen", "0.0.0.0:8000"}, {"--addr", "[::]:8000"},
		{"--port", "0.0.0.0:8000"}, {"--port", "-1"}, {"--port", "65536"}} {
		r := flmWith(t, dir, func(a *App) {
			ctx, cancel := context.WithCancel(context.Background())
			cancel()
			a.ctx = ctx
		}, append([]string{"ui"}, args...)...)
		if r.code == 0 || strings.Contains(r.stdout, "#token=") {
			t.Errorf("flm ui %v: exit %d, printed %q", args, r.code, r.stdout)
		}
	}
	r := flmWith(t, dir, func(a *App) {
		// Stop serving as soon as the URL is printed: only the address
		// it serves on matters.
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		a.ctx = ctx
		a.Stdout = writerThen{a.Stdout, cancel}
	}, "ui")
	var printed struct {
		URL        string `json:"url"`
		ListenAddr string `json:"listen_addr"`
	}
	r.data(t, &printed)
	if r.code != 0 || !strings.HasPrefix(printed.ListenAddr, "127.0.0.1:") || !strings.HasPrefix(printed.URL, "http://127.0.0.1:") {
		t.Fatalf("flm ui: exit %d, listens on %q, URL %q", r.code, printed.ListenAddr, printed.URL)
	}
}

// Review 3: another user of this machine tries to read the sign-in link
// of `flm ui --open` while it exists: the redirect file and its directory
// must refuse them, even when the data dir itself is open to everyone.
// A control file in the same data dir, readable by all, shows the other
// user does reach the directory (the refusal is the file's, not a
// closed parent's). Needs root (to be another user) and setpriv.
func TestUIOpenFileUnreadableByAnotherUser(t *testing.T) {
	setpriv, err := exec.LookPath("setpriv")
	if runtime.GOOS != "linux" || os.Geteuid() != 0 || err != nil {
		msg := "needs Linux, root and setpriv to act as another user"
		if os.Getenv("CI") == "true" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	dir := t.TempDir()
	for d := dir; d != os.TempDir() && d != "/"; d = filepath.Dir(d) {
		if err := os.Chmod(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	control := filepath.Join(dir, "control.txt")
	if err := os.WriteFile(control, []byte("readable"), 0o644); err != nil {
		t.Fatal(err)
	}
	asNobody := func(args ...string) ([]byte, error) {
		cmd := exec.Command(setpriv, append([]string{"--reuid=65534", "--regid=65534", "--clear-groups", "--"}, args...)...)
		return cmd.CombinedOutput()
	}
	old := uiOpener
	t.Cleanup(func() { uiOpener = old })
	var mu sync.Mutex
	var file string
	uiOpener = func(a []string) error { mu.Lock(); file = a[len(a)-1]; mu.Unlock(); return nil }
	const url = "http://127.0.0.1:1234/#token=" + "feedfacefeedfacefeedfacefeedfacefeedfacefeedfacefeedfacefeedface"
	cleanup, err := openViaFile(dir, url, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	defer cleanup()
	mu.Lock()
	defer mu.Unlock()
	if out, err := asNobody("cat", control); err != nil || string(out) != "readable" {
		t.Fatalf("the other user cannot read a world-readable file of the data dir (%v %s): the test proves nothing", err, out)
	}
	for _, args := range [][]string{{"cat", file}, {"ls", "-a", filepath.Dir(file)}, {"sh", "-c", "cat " + filepath.Dir(file) + "/*"}} {
		out, err := asNobody(args...)
		if err == nil || strings.Contains(string(out), "feedface") || args[0] == "ls" && strings.Contains(string(out), "flm-ui.html") {
			t.Errorf("another user ran %v: %v %s", args, err, out)
		}
	}
}

// writerThen writes to w, then calls then.
type writerThen struct {
	w    io.Writer
	then func()
}

func (x writerThen) Write(p []byte) (int, error) {
	n, err := x.w.Write(p)
	x.then()
	return n, err
}
