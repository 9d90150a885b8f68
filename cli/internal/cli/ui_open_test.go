package cli

import (
	"context"
	"os"
	"path/filepath"
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
