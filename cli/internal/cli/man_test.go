package cli

import (
	"bytes"
	"os/exec"
	"strings"
	"testing"
)

// `flm man` prints a roff page of the whole CLI that man(1) renders.
func TestManPage(t *testing.T) {
	r := ok(t, t.TempDir(), "man")
	page := r.stdout
	if !strings.HasPrefix(page, ".TH FLM 1 ") {
		t.Fatalf("no .TH header: %.200q", page)
	}
	for _, want := range []string{".SH NAME", ".SH SYNOPSIS", ".SH OPTIONS", ".SH COMMANDS", ".SH ENVIRONMENT", ".SH EXIT STATUS",
		"service install", "service status", "proxy start", "api-keys create", "security policy set", "completion", "--data-dir", "--foreground"} {
		if !strings.Contains(page, want) {
			t.Errorf("man page lacks %q", want)
		}
	}
	// Hidden commands and flags stay out; no Printf debris from roff.
	for _, banned := range []string{"service run [flags]", "access-log", "man [flags]", "%!"} {
		if strings.Contains(page, banned) {
			t.Errorf("man page contains %q", banned)
		}
	}

	// Reproducible: the date follows SOURCE_DATE_EPOCH.
	r = flmWith(t, t.TempDir(), func(a *App) {
		a.Getenv = func(k string) string {
			if k == "SOURCE_DATE_EPOCH" {
				return "1767225600"
			}
			return ""
		}
	}, "man")
	if !strings.HasPrefix(r.stdout, `.TH FLM 1 "2026-01-01" `) {
		t.Fatalf("SOURCE_DATE_EPOCH not used: %.80q", r.stdout)
	}

	_, err := exec.LookPath("man")
	needs(t, err == nil, "man not found: apt-get install man-db")
	cmd := exec.Command("man", "-l", "-")
	cmd.Stdin = strings.NewReader(page)
	cmd.Env = []string{"PATH=/usr/bin:/bin", "MANWIDTH=100", "LANG=C.UTF-8"}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil || stderr.Len() > 0 {
		t.Fatalf("man -l: %v\n%s", err, stderr.String())
	}
	text := string(out)
	for _, want := range []string{"NAME", "flm - a secure personal gateway", "service install [flags]", "EXIT STATUS"} {
		if !strings.Contains(text, want) {
			t.Errorf("rendered page lacks %q", want)
		}
	}
}
