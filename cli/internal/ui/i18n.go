package ui

import (
	"embed"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
)

//go:embed i18n/*.json
var catalogFS embed.FS

// Langs are the UI's languages; the first is the fallback.
var Langs = []string{"en", "ja"}

// catalogs holds every user-visible string of the UI, per language.
var catalogs = mustCatalogs()

func mustCatalogs() map[string]map[string]string {
	out := map[string]map[string]string{}
	for _, l := range Langs {
		b, err := catalogFS.ReadFile("i18n/" + l + ".json")
		if err != nil {
			panic(fmt.Sprintf("ui: catalog %s: %v", l, err)) // embedded: a build error
		}
		m := map[string]string{}
		if err := json.Unmarshal(b, &m); err != nil {
			panic(fmt.Sprintf("ui: catalog %s: %v", l, err))
		}
		out[l] = m
	}
	return out
}

// text returns key's message in lang; a missing key shows as itself, so a
// gap is visible, never silent (a test keeps the catalogs complete).
func text(lang, key string) string {
	if s, ok := catalogs[lang][key]; ok {
		return s
	}
	return key
}

// langOf picks the language: ?lang= (the switch), then the flm_lang
// cookie the switch sets, then Accept-Language, then English.
func langOf(r *http.Request) (lang string, fromQuery bool) {
	if l := r.URL.Query().Get("lang"); catalogs[l] != nil {
		return l, true
	}
	if c, err := r.Cookie(langCookie); err == nil && catalogs[c.Value] != nil {
		return c.Value, false
	}
	return acceptLanguage(r.Header.Get("Accept-Language")), false
}

// acceptLanguage returns the first of Langs the header names, in the
// header's order of preference (q-values honoured, ties by position).
func acceptLanguage(h string) string {
	best, bestQ := Langs[0], -1.0
	for _, part := range strings.Split(h, ",") {
		tag, params, _ := strings.Cut(strings.TrimSpace(part), ";")
		q := 1.0
		if v, ok := strings.CutPrefix(strings.TrimSpace(params), "q="); ok {
			if _, err := fmt.Sscanf(v, "%g", &q); err != nil {
				continue
			}
		}
		base, _, _ := strings.Cut(strings.ToLower(strings.TrimSpace(tag)), "-")
		if catalogs[base] != nil && q > bestQ && q > 0 {
			best, bestQ = base, q
		}
	}
	return best
}
