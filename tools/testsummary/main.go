// Command testsummary turns `go test -json` into what tools/test.sh shows and
// counts, so that its closing line is computed, never written by hand.
//
//	go test -json ./... | tee run.json | testsummary stream
//	testsummary total [-ci] [-allow tools/skip-allowlist.txt] run.json...
//
// stream prints go test's per-package lines (ok, FAIL, ? ... [no test
// files]) as packages finish and, for a failing package, the full output of
// every failed test and the package's own output (panics, build errors)
// first; it exits 1 when something failed.
//
// total reads the saved streams, lists every skipped test with its reason
// and ends with the line
//
//	tests: N passed, N failed, N skipped
//
// Tests are counted as go test reports them: subtests and fuzz seeds count
// one each, a parent counts besides its subtests. A package that fails with
// no failed test (build error, panic outside a test, TestMain) counts as one
// failure. With -ci, a skip whose test is not on the allow-list fails the run:
// under CI a missing prerequisite must be installed, not skipped.
//
// The allow-list has one skip per line, "TestName[/subtest] reason", the
// reason required; blank lines and lines starting with # are ignored.
package main

import (
	"bufio"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}

func run(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprintln(stderr, "usage: testsummary stream | testsummary total [-ci] [-allow FILE] FILE...")
		return 2
	}
	switch args[0] {
	case "stream":
		c := newCollector(stdout)
		if err := c.read(stdin); err != nil {
			fmt.Fprintln(stderr, "testsummary:", err)
			return 2
		}
		if c.failed > 0 {
			return 1
		}
		return 0
	case "total":
		return total(args[1:], stdout, stderr)
	}
	fmt.Fprintf(stderr, "testsummary: unknown command %q\n", args[0])
	return 2
}

func total(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("testsummary total", flag.ContinueOnError)
	fs.SetOutput(stderr)
	ci := fs.Bool("ci", false, "fail on a skip that is not on the allow-list")
	allowFile := fs.String("allow", "", "the allow-list of skips (TestName reason, one a line)")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	allow := map[string]string{}
	if *allowFile != "" {
		var err error
		if allow, err = readAllowList(*allowFile); err != nil {
			fmt.Fprintln(stderr, "testsummary:", err)
			return 2
		}
	}
	c := newCollector(nil)
	for _, name := range fs.Args() {
		f, err := os.Open(name)
		if err != nil {
			fmt.Fprintln(stderr, "testsummary:", err)
			return 2
		}
		err = c.read(f)
		f.Close()
		if err != nil {
			fmt.Fprintf(stderr, "testsummary: %s: %v\n", name, err)
			return 2
		}
	}

	status := 0
	if c.failed > 0 {
		status = 1
	}
	if len(c.skips) > 0 {
		fmt.Fprintln(stdout, "skipped tests:")
		var refused []skip
		for _, s := range c.skips {
			why, ok := allow[s.test]
			switch {
			case ok:
				fmt.Fprintf(stdout, "  %s %s: %s (allowed: %s)\n", s.pkg, s.test, s.reason, why)
			case *ci:
				fmt.Fprintf(stdout, "  %s %s: %s (NOT ALLOWED under CI)\n", s.pkg, s.test, s.reason)
				refused = append(refused, s)
			default:
				fmt.Fprintf(stdout, "  %s %s: %s\n", s.pkg, s.test, s.reason)
			}
		}
		if len(refused) > 0 {
			fmt.Fprintf(stdout, "CI=true: %d skipped test(s) not on %s; install what they need or list them there with the reason\n",
				len(refused), pick(*allowFile != "", *allowFile, "the allow-list"))
			status = 1
		}
	}
	fmt.Fprintf(stdout, "tests: %d passed, %d failed, %d skipped\n", c.passed, c.failed, len(c.skips))
	return status
}

func pick(cond bool, yes, no string) string {
	if cond {
		return yes
	}
	return no
}

// readAllowList reads "TestName reason" lines.
func readAllowList(name string) (map[string]string, error) {
	data, err := os.ReadFile(name)
	if err != nil {
		return nil, err
	}
	allow := map[string]string{}
	for i, line := range strings.Split(string(data), "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		test, reason, _ := strings.Cut(line, " ")
		if reason = strings.TrimSpace(reason); reason == "" {
			return nil, fmt.Errorf("%s:%d: %q has no reason", name, i+1, test)
		}
		allow[test] = reason
	}
	return allow, nil
}

// event is one line of `go test -json` (cmd/test2json, plus the go
// command's build-output and build-fail actions).
type event struct {
	Action  string
	Package string
	Test    string
	Output  string
}

type key struct{ pkg, test string }

type skip struct{ pkg, test, reason string }

type collector struct {
	out io.Writer // nil: count only

	passed, failed int
	skips          []skip

	output      map[key][]string    // by test; test "" is the package's own
	failedTests map[string][]string // package -> failed tests, in order
}

func newCollector(out io.Writer) *collector {
	return &collector{
		out:         out,
		output:      map[key][]string{},
		failedTests: map[string][]string{},
	}
}

// read consumes a stream. Lines that are not JSON (the go command's own
// messages, if stderr was merged in) are printed as they are.
func (c *collector) read(r io.Reader) error {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64*1024), 16*1024*1024)
	for sc.Scan() {
		line := sc.Bytes()
		var e event
		if len(line) == 0 || line[0] != '{' || json.Unmarshal(line, &e) != nil {
			c.print(string(line) + "\n")
			continue
		}
		c.handle(e)
	}
	if err := sc.Err(); err != nil {
		return err
	}
	// A package whose stream was cut short (go test killed) is a failure.
	var open []string
	for k := range c.output {
		if k.test == "" {
			open = append(open, k.pkg)
		}
	}
	sort.Strings(open)
	for _, pkg := range open {
		c.output[key{pkg, ""}] = append(c.output[key{pkg, ""}], "FAIL\t"+pkg+" [the stream ended before the package finished]\n")
		c.finishPackage(pkg, "fail")
	}
	return nil
}

func (c *collector) print(s string) {
	if c.out != nil {
		io.WriteString(c.out, s)
	}
}

func (c *collector) handle(e event) {
	switch e.Action {
	case "build-output":
		c.print(e.Output) // compiler errors, printed as go test prints them
		return
	case "build-fail":
		return // the package's own "fail" follows
	}
	k := key{e.Package, e.Test}
	if e.Test == "" {
		switch e.Action {
		case "start":
			c.output[k] = nil
		case "output":
			c.output[k] = append(c.output[k], e.Output)
		case "pass", "fail", "skip":
			if _, ok := c.output[k]; !ok {
				c.output[k] = nil // a stream without "start"
			}
			c.finishPackage(e.Package, e.Action)
		}
		return
	}
	switch e.Action {
	case "output":
		c.output[k] = append(c.output[k], e.Output)
	case "pass":
		c.passed++
		delete(c.output, k)
	case "fail":
		c.failed++
		c.failedTests[e.Package] = append(c.failedTests[e.Package], e.Test)
	case "skip":
		c.skips = append(c.skips, skip{e.Package, e.Test, skipReason(c.output[k])})
		delete(c.output, k)
	}
}

// finishPackage prints a finished package: for a failure everything that
// explains it, then go test's closing lines for the package.
func (c *collector) finishPackage(pkg, action string) {
	own := c.output[key{pkg, ""}]
	var summary, details []string
	for _, l := range own {
		if isSummaryLine(pkg, l) {
			summary = append(summary, l)
		} else {
			details = append(details, l)
		}
	}
	if action == "fail" {
		if len(c.failedTests[pkg]) == 0 {
			c.failed++ // build error, panic outside a test, TestMain...
		}
		for _, t := range c.failedTests[pkg] {
			for _, l := range c.output[key{pkg, t}] {
				c.print(l)
			}
		}
		for _, l := range details {
			if l != "FAIL\n" {
				c.print(l)
			}
		}
		if len(summary) == 0 {
			summary = []string{"FAIL\t" + pkg + "\n"}
		}
	}
	for _, l := range summary {
		c.print(l)
	}
	for k := range c.output {
		if k.pkg == pkg {
			delete(c.output, k)
		}
	}
	delete(c.failedTests, pkg)
}

// isSummaryLine: go test's per-package closing lines, as it prints them
// without -v (with -cover, a package without tests gets "\tpkg\t\tcoverage").
func isSummaryLine(pkg, l string) bool {
	for _, p := range []string{"ok  \t", "FAIL\t", "?   \t", "\t" + pkg + "\t"} {
		if strings.HasPrefix(l, p) {
			return true
		}
	}
	return false
}

// skipReason is what the test logged before it skipped (t.Skip's message
// included), without go test's own === and --- lines.
func skipReason(lines []string) string {
	var parts []string
	for _, l := range lines {
		t := strings.TrimSpace(l)
		if t == "" || strings.HasPrefix(t, "=== ") || strings.HasPrefix(t, "--- ") {
			continue
		}
		parts = append(parts, t)
	}
	if len(parts) == 0 {
		return "(no reason given)"
	}
	return strings.Join(parts, " ")
}
