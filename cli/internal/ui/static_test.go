package ui

import (
	"encoding/json"
	"io/fs"
	"os/exec"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// The UI calls core services only: it must not reach the stores, the
// proxy's internals, gorm or SQLite directly, nor run programs (the CLI
// above all). An allowlist, not a denylist: a new dependency of the UI
// (a keychain, a process controller, …) fails here until reviewed.
func TestImportGraph(t *testing.T) {
	deps := goListDeps(t, ".")
	if !slices.Contains(deps, "github.com/unjuno/flm/core/proxyctl") {
		t.Fatalf("go list -deps looks wrong: %v", deps)
	}
	for _, d := range uiDepViolations(deps) {
		t.Errorf("the UI package depends on %s", d)
	}
}

func goListDeps(t *testing.T, pkg string) []string {
	t.Helper()
	out, err := exec.Command("go", "list", "-deps", pkg).CombinedOutput()
	if err != nil {
		t.Fatalf("go list %s: %v\n%s", pkg, err, out)
	}
	return strings.Fields(string(out))
}

// uiDepViolations are the dependencies the UI may not have: outside the
// standard library, only core, the firewall rule generator and the QR
// encoder; inside it, nothing that runs programs or opens databases.
func uiDepViolations(deps []string) []string {
	allowed := []string{"github.com/unjuno/flm/core/", "github.com/unjuno/flm/cli/internal/firewall", "github.com/unjuno/flm/cli/internal/ui", "rsc.io/qr"}
	forbiddenStd := []string{"os/exec", "database/sql", "plugin"}
	var bad []string
	for _, d := range deps {
		first, _, _ := strings.Cut(d, "/")
		std := !strings.Contains(first, ".")
		ok := std && !slices.Contains(forbiddenStd, d)
		for _, a := range allowed {
			if !std && (d == strings.TrimSuffix(a, "/") || strings.HasPrefix(d, strings.TrimSuffix(a, "/")+"/")) {
				ok = true
			}
		}
		if !ok {
			bad = append(bad, d)
		}
	}
	return bad
}

func TestCatalogsHaveTheSameKeys(t *testing.T) {
	en, ja := catalogs["en"], catalogs["ja"]
	for k := range en {
		if _, ok := ja[k]; !ok {
			t.Errorf("ja.json lacks %q", k)
		}
	}
	for k := range ja {
		if _, ok := en[k]; !ok {
			t.Errorf("en.json lacks %q", k)
		}
	}
	for k, v := range ja {
		if strings.TrimSpace(v) == "" {
			t.Errorf("ja %q is empty", k)
		}
	}
}

// Every key the pages and scripts use is in the catalogs.
func TestEveryUsedKeyIsInTheCatalogs(t *testing.T) {
	uses := []*regexp.Regexp{
		regexp.MustCompile(`\{\{t "([^"]+)"\}\}`),
		regexp.MustCompile(`\bT\('([a-z0-9_.-]*[a-z0-9_-])'`),
		regexp.MustCompile(`catalog\['([a-z0-9_.-]+)'\]`),
	}
	n := 0
	check := func(name string, b []byte) {
		for _, re := range uses {
			for _, m := range re.FindAllSubmatch(b, -1) {
				n++
				if _, ok := catalogs["en"][string(m[1])]; !ok {
					t.Errorf("%s uses %q, which en.json lacks", name, m[1])
				}
			}
		}
	}
	for _, fsys := range []fs.FS{pageFS, staticFS} {
		_ = fs.WalkDir(fsys, ".", func(p string, d fs.DirEntry, err error) error {
			if err == nil && !d.IsDir() {
				b, _ := fs.ReadFile(fsys, p)
				check(p, b)
			}
			return nil
		})
	}
	// Keys built at run time: states, modes, warnings.
	for _, k := range []string{"state.running-healthy", "state.running-degraded", "state.installed-only", "state.error-network", "state.error-api",
		"mode.local-http", "mode.dev-selfsigned", "mode.https-acme", "mode.packaged-ca",
		"fw.ufw", "fw.firewalld", "fw.nftables", "fw.pf", "fw.netsh",
		"warn.plain_http_lan", "warn.cert_expired", "warn.cert_expires_soon", "warn.cert_renewal_failing", "warn.egress_fell_back",
		"warn.proxy_not_answering", "warn.proxy_error"} {
		if _, ok := catalogs["en"][k]; !ok {
			t.Errorf("en.json lacks %q", k)
		}
	}
	if n < 100 {
		t.Fatalf("found only %d uses of catalog keys: the patterns are broken", n)
	}
}

// The pages work under the CSP: no inline script, style or handler, and
// nothing from another origin.
func TestPagesHaveNoInlineCode(t *testing.T) {
	bad := []*regexp.Regexp{
		regexp.MustCompile(`<script(?:\s[^>]*)?>\s*[^<\s]`), // a script with a body
		regexp.MustCompile(`(?i)\son[a-z]+\s*=`),            // onclick=…
		regexp.MustCompile(`(?i)\sstyle\s*=`),
		regexp.MustCompile(`(?i)<style`),
		regexp.MustCompile(`(?i)(src|href)="(https?:)?//`),
		regexp.MustCompile(`(?i)javascript:`),
	}
	_ = fs.WalkDir(pageFS, ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, _ := fs.ReadFile(pageFS, p)
		for _, tag := range regexp.MustCompile(`<script[^>]*>`).FindAll(b, -1) {
			if !strings.Contains(string(tag), ` src="/static/`) {
				t.Errorf("%s: %s is not a script file of this origin", p, tag)
			}
		}
		for _, re := range bad {
			if loc := re.FindIndex(b); loc != nil {
				t.Errorf("%s: %q breaks the CSP", p, b[loc[0]:min(loc[1]+20, len(b))])
			}
		}
		return nil
	})
	// No script writes HTML from strings.
	_ = fs.WalkDir(staticFS, ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || !strings.HasSuffix(p, ".js") {
			return err
		}
		b, _ := fs.ReadFile(staticFS, p)
		for _, s := range []string{"innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval(", "new Function"} {
			if strings.Contains(string(b), s) {
				t.Errorf("%s uses %s", p, s)
			}
		}
		return nil
	})
}

func TestCatalogsAreValidJSON(t *testing.T) {
	for _, l := range Langs {
		b, err := catalogFS.ReadFile("i18n/" + l + ".json")
		if err != nil || !json.Valid(b) {
			t.Fatalf("%s: %v", l, err)
		}
	}
}
