// Package web serves the pages: plain HTML, CSS and JavaScript embedded in the binary, every
// asset local (no CDN), so the pages work on the compound's network alone. Each role has one
// page; the language is the browser's (Accept-Language), and each page has a switch.
package web

import (
	"bytes"
	"embed"
	"io/fs"
	"net/http"
	"strconv"
	"strings"
)

//go:embed static
var static embed.FS

// pages are the HTML pages by path; everything else under / is an asset.
var pages = map[string]string{
	"/":         "index.html",
	"/signin":   "signin.html",
	"/supplier": "supplier.html",
	"/dispatch": "dispatch.html",
	"/courier":  "courier.html",
	"/worker":   "worker.html",
}

// Handler serves the pages and their assets.
func Handler() http.Handler {
	sub, err := fs.Sub(static, "static")
	if err != nil {
		panic(err) // the directory is embedded at build time; missing means a broken build
	}
	html := map[string][]byte{}
	for path, name := range pages {
		b, err := fs.ReadFile(sub, name)
		if err != nil {
			panic(err)
		}
		html[path] = b
	}
	files := http.FileServerFS(sub)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, HEAD")
			http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
			return
		}
		// Embedded files carry no modification time; make browsers revalidate after a deploy.
		w.Header().Set("Cache-Control", "no-cache")
		page, ok := html[r.URL.Path]
		if !ok {
			if strings.HasSuffix(r.URL.Path, ".html") {
				http.NotFound(w, r) // pages only by their own paths
				return
			}
			files.ServeHTTP(w, r)
			return
		}
		lang := Language(r.Header.Get("Accept-Language"))
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.Header().Set("Vary", "Accept-Language")
		_, _ = w.Write(bytes.Replace(page, []byte("{{lang}}"), []byte(lang), 1))
	})
}

// Language picks the page language from an Accept-Language header: "en" or "zh-CN", by the
// browser's preference order (q-values), Chinese when it names neither.
func Language(header string) string {
	best, bestQ := "zh-CN", -1.0
	for _, part := range strings.Split(header, ",") {
		tag, params, _ := strings.Cut(strings.TrimSpace(part), ";")
		q := 1.0
		if v, ok := strings.CutPrefix(strings.TrimSpace(params), "q="); ok {
			if f, err := strconv.ParseFloat(v, 64); err == nil {
				q = f
			}
		}
		tag = strings.ToLower(strings.TrimSpace(tag))
		var lang string
		switch {
		case tag == "en" || strings.HasPrefix(tag, "en-"):
			lang = "en"
		case tag == "zh" || strings.HasPrefix(tag, "zh-"):
			lang = "zh-CN"
		default:
			continue
		}
		if q > bestQ {
			best, bestQ = lang, q
		}
	}
	return best
}
