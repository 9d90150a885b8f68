package ui

import (
	"embed"
	"encoding/json"
	"html/template"
	"io/fs"
	"net/http"
)

//go:embed web/*.html
var pageFS embed.FS

//go:embed web/static
var staticFS embed.FS

var pages = template.Must(template.New("").Funcs(template.FuncMap{
	// t is replaced per request (Clone) with the page's language.
	"t": func(string) string { return "" },
}).ParseFS(pageFS, "web/*.html"))

func staticHandler() http.Handler {
	sub, err := fs.Sub(staticFS, "web/static")
	if err != nil {
		panic(err) // embedded: a build error
	}
	return http.FileServerFS(sub)
}

type pageData struct {
	Lang, Other string
	Catalog     string
}

// page serves the app's shell to a session cookie, and the sign-in page
// (401) to everyone else: it reads the token from the URL fragment and
// posts it. The shell holds no secret (the cookie reaches every port of
// 127.0.0.1): its scripts read the session secret from sessionStorage.
func (s *Server) page(w http.ResponseWriter, r *http.Request) {
	lang, fromQuery := langOf(r)
	if fromQuery {
		http.SetCookie(w, &http.Cookie{Name: langCookie, Value: lang, Path: "/", SameSite: http.SameSiteStrictMode, HttpOnly: true, MaxAge: 365 * 24 * 3600})
	}
	cat, _ := json.Marshal(catalogs[lang])
	d := pageData{Lang: lang, Other: text(lang, "lang.other_code"), Catalog: string(cat)}
	name, status := "signin.html", http.StatusUnauthorized
	if sess := s.sessionOf(r); sess != nil {
		name, status = "app.html", http.StatusOK
	}
	t, err := pages.Clone()
	if err == nil {
		t = t.Funcs(template.FuncMap{"t": func(key string) string { return text(lang, key) }})
	}
	if err != nil {
		http.Error(w, "template", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(status)
	_ = t.ExecuteTemplate(w, name, d)
}
