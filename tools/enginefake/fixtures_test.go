package enginefake

import (
	"bytes"
	"context"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// sharedFixtures is the upstream copy, relative to this package's directory.
const sharedFixtures = "../../../shared/fixtures/engines"

// TestEmbeddedFixturesMatchShared keeps fixtures/ byte-identical to
// shared/fixtures/engines, in both directions. CI checks the shared tree out
// beside the repository, so there a missing tree is a broken job, not a pass;
// elsewhere (a clone on its own) the test says it skipped.
func TestEmbeddedFixturesMatchShared(t *testing.T) {
	if _, err := os.Stat(sharedFixtures); err != nil {
		missingShared(t, os.Getenv("CI") == "true", err)
		return
	}
	embedded := FixtureFS()
	seen := map[string]bool{}
	err := filepath.WalkDir(sharedFixtures, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, err := filepath.Rel(sharedFixtures, p)
		if err != nil {
			return err
		}
		rel = filepath.ToSlash(rel)
		seen[rel] = true
		want, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		got, err := fs.ReadFile(embedded, rel)
		if err != nil {
			t.Errorf("%s: not embedded (copy it into enginefake/fixtures): %v", rel, err)
			return nil
		}
		if !bytes.Equal(got, want) {
			t.Errorf("%s: embedded copy differs from %s", rel, p)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	_ = fs.WalkDir(embedded, ".", func(p string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() && !seen[p] {
			t.Errorf("%s: embedded but no longer in %s", p, sharedFixtures)
		}
		return err
	})
	if len(seen) == 0 {
		t.Errorf("no files under %s", sharedFixtures)
	}
}

// missingShared reports a missing shared fixture tree: an error under CI, a
// visible skip elsewhere.
func missingShared(t testing.TB, ci bool, err error) {
	t.Helper()
	if ci {
		t.Fatalf("CI=true but %s is missing (%v): the job must check out the shared fixtures beside the repository", sharedFixtures, err)
	}
	t.Skipf("%s not found (%v): embedded fixtures not compared with the shared ones", sharedFixtures, err)
}

// TestMissingSharedFailsUnderCI runs the comparison again in a directory
// without the shared tree beside it: it must fail under CI=true and report a
// skip (not a pass) elsewhere.
func TestMissingSharedFailsUnderCI(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "a", "b", "c") // ../../../shared does not exist
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, ci := range []string{"true", ""} {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		cmd := exec.CommandContext(ctx, os.Args[0], "-test.run=^TestEmbeddedFixturesMatchShared$", "-test.v")
		cmd.Dir = dir
		cmd.Env = append(os.Environ(), "CI="+ci)
		out, err := cmd.CombinedOutput()
		cancel()
		switch {
		case ci == "true" && (err == nil || !strings.Contains(string(out), "--- FAIL: TestEmbeddedFixturesMatchShared")):
			t.Errorf("CI=true, shared tree missing: want a failure, got err=%v\n%s", err, out)
		case ci == "" && (err != nil || !strings.Contains(string(out), "--- SKIP: TestEmbeddedFixturesMatchShared")):
			t.Errorf("no CI, shared tree missing: want a visible skip, got err=%v\n%s", err, out)
		}
	}
}

func TestParseFixture(t *testing.T) {
	fx, err := LoadFixture("llamacpp/error_empty_body.http")
	if err != nil {
		t.Fatal(err)
	}
	if fx.Kind != LlamaCpp || fx.Request.Method != "POST" || fx.Request.Target != "/v1/chat/completions" ||
		len(fx.Request.Body) != 0 || fx.Response.Status != 500 || fx.Response.Reason != "Internal Server Error" {
		t.Errorf("parsed %+v", fx)
	}
	if v, ok := fx.Response.Header.Get("access-control-allow-origin"); !ok || v != "" {
		t.Errorf("empty header value: %q %v", v, ok)
	}
	if !strings.HasPrefix(fx.Source, "captured live") {
		t.Errorf("source %q", fx.Source)
	}

	fx, _ = LoadFixture("llamacpp/error_completion_malformed_json.http")
	if string(fx.Request.Body) != `{"prompt": ` { // the trailing space is part of the body
		t.Errorf("request body %q", fx.Request.Body)
	}
	fx, _ = LoadFixture("ollama/root_head.http")
	if v, _ := fx.Response.Header.Get("Content-Length"); v != "17" || len(fx.Response.Body) != 0 {
		t.Errorf("HEAD: Content-Length %q, body %q", v, fx.Response.Body)
	}
	fx, _ = LoadFixture("llamacpp/router_mode/props_model.http")
	if fx.Request.Path() != "/props" || fx.Request.Target != "/props?model=tiny-chat" {
		t.Errorf("target %q path %q", fx.Request.Target, fx.Request.Path())
	}

	for _, bad := range []string{"", "GET / HTTP/1.1\n", "### SOURCE: x\n### REQUEST\nGET / HTTP/1.1\n\n"} {
		if _, err := ParseFixture("x/bad.http", []byte(bad)); err == nil {
			t.Errorf("ParseFixture(%q) accepted", bad)
		}
	}
}

// TestFixtureBodiesRoundTrip: every captured JSON body, SSE event and NDJSON
// line re-encodes to the same bytes, so untouched replays are exact and
// substitutions change only what they replace.
func TestFixtureBodiesRoundTrip(t *testing.T) {
	fixtures, err := Fixtures()
	if err != nil {
		t.Fatal(err)
	}
	for _, fx := range fixtures {
		ct, _ := fx.Response.Header.Get("Content-Type")
		body := fx.Response.Body
		switch {
		case len(body) == 0:
		case strings.HasPrefix(ct, "text/event-stream"):
			events, err := SSEStream(body)
			if err != nil {
				t.Errorf("%s: %v", fx.Name, err)
				continue
			}
			payloads, _ := SSEEvents(body)
			names := eventNames(fx, sse, len(events))
			var out []byte
			for i, e := range eventBytes(jsonEvents(payloads)) {
				out = append(out, sse.frame(nameAt(names, i), e)...)
			}
			if !bytes.Equal(out, body) {
				t.Errorf("%s: SSE does not round-trip", fx.Name)
			}
		case strings.HasPrefix(ct, "application/x-ndjson"):
			var out []byte
			for _, l := range eventBytes(ndjsonNodes(fx)) {
				out = append(out, ndjson.frame("", l)...)
			}
			if !bytes.Equal(out, body) {
				t.Errorf("%s: NDJSON does not round-trip", fx.Name)
			}
		case strings.Contains(ct, "json"):
			if got := bodyNode(fx).bytes(); !bytes.Equal(got, body) {
				t.Errorf("%s: JSON does not round-trip:\n%s\n%s", fx.Name, got, body)
			}
		}
	}
}

func TestJSONNodeEdits(t *testing.T) {
	n := mustJSON([]byte(`{"a":1.0,"b":{"c":"<x>"},"d":[1,2]}`))
	n.set("a", "ü/ x:1")
	n.get("b").set("e", nil)
	n.insertAfter("a", "z", true)
	n.del("d")
	if got, want := string(n.bytes()), `{"a":"ü/ x:1","z":true,"b":{"c":"<x>","e":null}}`; got != want {
		t.Errorf("got %s, want %s", got, want)
	}
	m := mustJSON([]byte(`{"s":{"p":["tiny-chat.gguf","x"]}}`))
	m.replaceInStrings("tiny-chat", "a/b")
	if got := string(m.bytes()); got != `{"s":{"p":["a/b.gguf","x"]}}` {
		t.Errorf("replaceInStrings: %s", got)
	}
	if _, err := parseJSON([]byte(`{"a":`)); err == nil {
		t.Error("truncated JSON accepted")
	}
}

func TestSameShapeDetectsDifferences(t *testing.T) {
	for _, c := range [][2]string{
		{`{"a":1}`, `{"a":"1"}`},
		{`{"a":1}`, `{"a":1,"b":2}`},
		{`{"a":[1,2]}`, `{"a":[1]}`},
		{`{"a":null}`, `{"a":{}}`},
		{`{"a":{"b":true}}`, `{"a":{"b":1}}`},
	} {
		if sameShape([]byte(c[0]), []byte(c[1])) == nil {
			t.Errorf("%s vs %s: no difference found", c[0], c[1])
		}
	}
	if err := sameShape([]byte(`{"a":1,"b":[{"c":"x"}]}`), []byte(`{"b":[{"c":"y"}],"a":2.5}`)); err != nil {
		t.Error(err)
	}
}

// TestEngineModuleCapturesMatch: the captures that each engine module's own
// golden tests replay (engine-*/testdata/captures, laid out like the kind's
// directory here) are verbatim copies of these fixtures, so a re-capture
// cannot leave a driver tested against an old answer.
func TestEngineModuleCapturesMatch(t *testing.T) {
	for _, k := range Kinds {
		dir := filepath.Join("..", "..", "engine-"+string(k), "testdata", "captures")
		n := 0
		err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
			if err != nil || d.IsDir() {
				return err
			}
			rel, err := filepath.Rel(dir, p)
			if err != nil {
				return err
			}
			name := string(k) + "/" + filepath.ToSlash(rel)
			got, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			want, err := fs.ReadFile(FixtureFS(), name)
			switch {
			case err != nil:
				t.Errorf("%s: no fixture %s: %v", p, name, err)
			case !bytes.Equal(got, want):
				t.Errorf("%s differs from the fixture %s: copy it again", p, name)
			}
			n++
			return nil
		})
		if err != nil || n == 0 {
			t.Errorf("%s: %d captures, %v", dir, n, err)
		}
	}
}
