package enginefake

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"sort"
	"strings"
	"testing"
	"time"
)

// startFake starts a fake for the test and closes it at the end.
func startFake(t *testing.T, opts Options) *Server {
	t.Helper()
	s, err := Start(opts)
	if err != nil {
		t.Fatalf("Start(%+v): %v", opts, err)
	}
	t.Cleanup(s.Close)
	return s
}

// testClient has a bounded timeout: no test may wait for long.
func testClient() *http.Client {
	return &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{}}
}

type result struct {
	Status int
	Header http.Header
	Close  bool
	Body   []byte
}

// do sends one request and reads the whole answer.
func do(t *testing.T, c *http.Client, method, url string, header http.Header, body []byte) result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	var rd io.Reader = http.NoBody
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, url, rd)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range header {
		req.Header[k] = v
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s: reading body: %v", method, url, err)
	}
	return result{Status: resp.StatusCode, Header: resp.Header, Close: resp.Close, Body: b}
}

func post(t *testing.T, c *http.Client, url, body string) result {
	t.Helper()
	return do(t, c, http.MethodPost, url, http.Header{"Content-Type": {"application/json"}}, []byte(body))
}

func get(t *testing.T, c *http.Client, url string) result {
	t.Helper()
	return do(t, c, http.MethodGet, url, nil, nil)
}

// shapeOf decodes JSON keeping numbers as json.Number.
func shapeOf(b []byte) (any, error) {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, err
	}
	if dec.More() {
		return nil, fmt.Errorf("trailing data")
	}
	return v, nil
}

func typeName(v any) string {
	switch v.(type) {
	case nil:
		return "null"
	case bool:
		return "bool"
	case json.Number:
		return "number"
	case string:
		return "string"
	case []any:
		return "array"
	case map[string]any:
		return "object"
	}
	return fmt.Sprintf("%T", v)
}

// sameShape compares two JSON documents: the same key sets and value types,
// recursively, and arrays of the same length. Values may differ.
func sameShape(want, got []byte) error {
	w, err := shapeOf(want)
	if err != nil {
		return fmt.Errorf("captured body is not JSON: %v", err)
	}
	g, err := shapeOf(got)
	if err != nil {
		return fmt.Errorf("fake body is not JSON: %v: %.200q", err, got)
	}
	return compareShape("$", w, g)
}

func compareShape(path string, w, g any) error {
	if typeName(w) != typeName(g) {
		return fmt.Errorf("%s: type %s, captured %s", path, typeName(g), typeName(w))
	}
	switch w := w.(type) {
	case map[string]any:
		g := g.(map[string]any)
		if wk, gk := keys(w), keys(g); strings.Join(wk, ",") != strings.Join(gk, ",") {
			return fmt.Errorf("%s: keys %v, captured %v", path, gk, wk)
		}
		for k := range w {
			if err := compareShape(path+"."+k, w[k], g[k]); err != nil {
				return err
			}
		}
	case []any:
		g := g.([]any)
		if len(w) != len(g) {
			return fmt.Errorf("%s: %d elements, captured %d", path, len(g), len(w))
		}
		for i := range w {
			if err := compareShape(fmt.Sprintf("%s[%d]", path, i), w[i], g[i]); err != nil {
				return err
			}
		}
	}
	return nil
}

func keys(m map[string]any) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// sseData splits an SSE body as received into its data payloads.
func sseData(t *testing.T, body []byte) [][]byte {
	t.Helper()
	ev, err := SSEEvents(body)
	if err != nil {
		t.Fatalf("bad SSE: %v\n%s", err, body)
	}
	return ev
}
