// Package web serves the resident page: plain HTML, CSS and JavaScript embedded in the binary,
// every asset local (no CDN), so the page works on the compound's network alone.
package web

import (
	"embed"
	"io/fs"
	"net/http"
)

//go:embed static
var static embed.FS

// Handler serves the page at / and its assets beside it.
func Handler() http.Handler {
	sub, err := fs.Sub(static, "static")
	if err != nil {
		panic(err) // the directory is embedded at build time; missing means a broken build
	}
	files := http.FileServerFS(sub)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, HEAD")
			http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
			return
		}
		h := w.Header()
		// Embedded files carry no modification time; make browsers revalidate after a deploy.
		h.Set("Cache-Control", "no-cache")
		files.ServeHTTP(w, r)
	})
}
