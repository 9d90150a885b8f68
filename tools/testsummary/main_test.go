package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"
)

// The module whose `go test -json` stream the tests read: every outcome
// go test can report, produced by the real go command.
var sample = map[string]string{
	"go.mod": "module example.com/m\n\ngo 1.22\n",
	"a/a_test.go": `package a

import "testing"

func TestPass(t *testing.T) { t.Log("quiet-marker") }
func TestFail(t *testing.T) { t.Error("boom-marker") }
func TestSkip(t *testing.T) { t.Skip("needs frobnicator") }
func TestSub(t *testing.T) {
	t.Run("one", func(t *testing.T) {})
	t.Run("two", func(t *testing.T) { t.Skip("no two here") })
}
func FuzzSeed(f *testing.F) {
	f.Add(1)
	f.Add(2)
	f.Fuzz(func(t *testing.T, n int) {})
}
`,
	"b/b_test.go": "package b\n\nimport \"testing\"\n\nfunc TestX(t *testing.T) { undefinedThing() }\n",
	"c/c.go":      "package c\n",
	"d/d_test.go": `package d

import (
	"os"
	"testing"
)

func TestMain(m *testing.M) { m.Run(); os.Exit(3) }
func TestFine(t *testing.T) {}
`,
	"e/e_test.go": `package e

import "testing"

func TestOK(t *testing.T) {}
func TestNeedsX(t *testing.T) { t.Skip("x is not installed") }
`,
}

var (
	sampleOnce sync.Once
	sampleJSON []byte
	sampleErr  error
)

// sampleStream runs go test -json on the sample module once.
func sampleStream(t *testing.T) []byte {
	t.Helper()
	sampleOnce.Do(func() {
		dir, err := os.MkdirTemp("", "testsummary")
		if err != nil {
			sampleErr = err
			return
		}
		defer os.RemoveAll(dir)
		for name, body := range sample {
			p := filepath.Join(dir, name)
			err := os.MkdirAll(filepath.Dir(p), 0o755)
			if err == nil {
				err = os.WriteFile(p, []byte(body), 0o644)
			}
			if err != nil {
				sampleErr = err
				return
			}
		}
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
		defer cancel()
		cmd := exec.CommandContext(ctx, "go", "test", "-json", "-count=1", "./...")
		cmd.Dir = dir
		cmd.Env = append(os.Environ(), "GOWORK=off", "GOFLAGS=-mod=mod", "CGO_ENABLED=0")
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		sampleJSON, err = cmd.Output()
		if _, exit := err.(*exec.ExitError); err != nil && !exit {
			sampleErr = err
		}
		if sampleErr == nil && len(sampleJSON) == 0 {
			sampleErr = fmt.Errorf("no JSON from go test: %s", stderr.String())
		}
	})
	if sampleErr != nil {
		t.Fatalf("go test on the sample module: %v", sampleErr)
	}
	return sampleJSON
}

// onlyPackage keeps the events of one package.
func onlyPackage(t *testing.T, stream []byte, pkg string) []byte {
	t.Helper()
	var out bytes.Buffer
	sc := bufio.NewScanner(bytes.NewReader(stream))
	for sc.Scan() {
		var e event
		if json.Unmarshal(sc.Bytes(), &e) == nil && e.Package == pkg {
			out.Write(sc.Bytes())
			out.WriteByte('\n')
		}
	}
	return out.Bytes()
}

func writeFile(t *testing.T, name string, data []byte) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, data, 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func runCmd(args []string, stdin []byte) (code int, stdout, stderr string) {
	var o, e bytes.Buffer
	code = run(args, bytes.NewReader(stdin), &o, &e)
	return code, o.String(), e.String()
}

var closing = regexp.MustCompile(`(?m)\Atests: \d+ passed, \d+ failed, \d+ skipped\n\z`)

func lastLine(s string) string {
	s = strings.TrimSuffix(s, "\n")
	return s[strings.LastIndex(s, "\n")+1:] + "\n"
}

func TestStreamShowsPackagesAndFailures(t *testing.T) {
	code, out, _ := runCmd([]string{"stream"}, sampleStream(t))
	// go test -cover's line for a package without tests is shown too.
	cover := []byte(`{"Action":"start","Package":"x/y"}
{"Action":"output","Package":"x/y","Output":"\tx/y\t\tcoverage: 0.0% of statements\n"}
{"Action":"pass","Package":"x/y"}
`)
	if _, o, _ := runCmd([]string{"stream"}, cover); o != "\tx/y\t\tcoverage: 0.0% of statements\n" {
		t.Errorf("no-test package with -cover: %q", o)
	}
	if code != 1 {
		t.Errorf("exit %d, want 1 (failures)", code)
	}
	for _, want := range []string{
		"?   \texample.com/m/c\t[no test files]\n",
		"ok  \texample.com/m/e\t",
		"boom-marker",                            // a failed test's output
		"FAIL\texample.com/m/a\t",                // go test's closing line of the package
		"undefined: undefinedThing",              // the compiler's error
		"FAIL\texample.com/m/b [build failed]\n", // and the package's line
		"FAIL\texample.com/m/d\t",                // TestMain's exit status
	} {
		if !strings.Contains(out, want) {
			t.Errorf("stream output lacks %q:\n%s", want, out)
		}
	}
	// Passing tests stay quiet, and the failure's output comes before the
	// package's closing line.
	if strings.Contains(out, "quiet-marker") || strings.Contains(out, "TestPass") {
		t.Errorf("stream output shows passing tests:\n%s", out)
	}
	if strings.Index(out, "boom-marker") > strings.Index(out, "FAIL\texample.com/m/a\t") {
		t.Errorf("failure detail after the package line:\n%s", out)
	}
}

func TestTotalCounts(t *testing.T) {
	file := writeFile(t, "run.json", sampleStream(t))
	code, out, errOut := runCmd([]string{"total", file}, nil)
	if code != 1 {
		t.Errorf("exit %d, want 1: %s", code, errOut)
	}
	// passed: TestPass, TestSub, TestSub/one, FuzzSeed and its two seeds,
	// TestFine, TestOK; failed: TestFail, package b (build), package d
	// (TestMain); skipped: TestSkip, TestSub/two, TestNeedsX.
	if got, want := lastLine(out), "tests: 8 passed, 3 failed, 3 skipped\n"; got != want {
		t.Errorf("closing line %q, want %q\n%s", got, want, out)
	}
	if !closing.MatchString(lastLine(out)) {
		t.Errorf("closing line %q is not of the CI form", lastLine(out))
	}
	// Each skip with its package and the reason it logged.
	for _, want := range []string{
		`example.com/m/a TestSkip: a_test.go:\d+: needs frobnicator\n`,
		`example.com/m/a TestSub/two: a_test.go:\d+: no two here\n`,
		`example.com/m/e TestNeedsX: e_test.go:\d+: x is not installed\n`,
	} {
		if !regexp.MustCompile(want).MatchString(out) {
			t.Errorf("no %q in\n%s", want, out)
		}
	}
}

func TestTotalSkipsUnderCI(t *testing.T) {
	e := writeFile(t, "e.json", onlyPackage(t, sampleStream(t), "example.com/m/e"))

	code, out, _ := runCmd([]string{"total", e}, nil)
	if code != 0 || lastLine(out) != "tests: 1 passed, 0 failed, 1 skipped\n" {
		t.Errorf("outside CI a skip is shown, not fatal: exit %d\n%s", code, out)
	}

	code, out, _ = runCmd([]string{"total", "-ci", e}, nil)
	if code != 1 || !regexp.MustCompile(`TestNeedsX: e_test.go:\d+: x is not installed \(NOT ALLOWED under CI\)`).MatchString(out) {
		t.Errorf("CI, no allow-list: exit %d\n%s", code, out)
	}
	if lastLine(out) != "tests: 1 passed, 0 failed, 1 skipped\n" {
		t.Errorf("the closing line is not last:\n%s", out)
	}

	other := writeFile(t, "allow.txt", []byte("# comment\n\nTestSomethingElse it is elsewhere\n"))
	if code, out, _ = runCmd([]string{"total", "-ci", "-allow", other, e}, nil); code != 1 {
		t.Errorf("CI, skip not on the list: exit %d\n%s", code, out)
	}

	allow := writeFile(t, "allow.txt", []byte("TestNeedsX x only exists on the release machine\n"))
	code, out, _ = runCmd([]string{"total", "-ci", "-allow", allow, e}, nil)
	if code != 0 || !strings.Contains(out, "(allowed: x only exists on the release machine)") {
		t.Errorf("CI, allowed skip: exit %d\n%s", code, out)
	}

	noReason := writeFile(t, "allow.txt", []byte("TestNeedsX\n"))
	if code, _, errOut := runCmd([]string{"total", "-ci", "-allow", noReason, e}, nil); code != 2 || !strings.Contains(errOut, "has no reason") {
		t.Errorf("an entry without reason: exit %d %s", code, errOut)
	}
}

func TestStreamCutShortIsAFailure(t *testing.T) {
	a := onlyPackage(t, sampleStream(t), "example.com/m/e")
	lines := bytes.SplitAfter(a, []byte("\n"))
	cut := bytes.Join(lines[:len(lines)/2], nil) // no package pass/fail event
	code, out, _ := runCmd([]string{"stream"}, cut)
	if code != 1 || !strings.Contains(out, "FAIL\texample.com/m/e [the stream ended before the package finished]") {
		t.Errorf("cut stream: exit %d %s", code, out)
	}
	code, out, _ = runCmd([]string{"total", writeFile(t, "cut.json", cut)}, nil)
	if code != 1 || lastLine(out) != "tests: 1 passed, 1 failed, 0 skipped\n" {
		t.Errorf("cut stream, total: exit %d %s", code, out)
	}
}

func TestUsage(t *testing.T) {
	for _, args := range [][]string{nil, {"bogus"}, {"total", "-nope"}, {"total", "/does/not/exist.json"}} {
		if code, _, _ := runCmd(args, nil); code != 2 {
			t.Errorf("%q: exit %d, want 2", args, code)
		}
	}
}
