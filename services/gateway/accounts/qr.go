package accounts

import (
	"fmt"
	"io/fs"
	"net/url"
	"strings"

	qrcode "github.com/skip2/go-qrcode"
)

// SignInLink is the link printed on a household's notice: opening it signs the phone in.
// baseURL is the gateway as residents reach it, e.g. "http://192.168.1.10:8080"; empty gives a
// path, for a page that resolves it against its own address.
func SignInLink(baseURL, code string) string {
	return strings.TrimRight(baseURL, "/") + "/signin?code=" + url.QueryEscape(FormatCode(code))
}

// QRCode renders text (a sign-in link) as a PNG of size×size pixels. Medium error correction
// survives a crumpled or smudged notice without making the symbol too dense for an old phone.
func QRCode(text string, size int) ([]byte, error) {
	if size < 64 || size > 2048 {
		return nil, fmt.Errorf("accounts: QR size %d outside 64..2048", size)
	}
	png, err := qrcode.Encode(text, qrcode.Medium, size)
	if err != nil {
		return nil, fmt.Errorf("accounts: QR code: %w", err)
	}
	return png, nil
}

func mustSub(f fs.FS, dir string) fs.FS {
	sub, err := fs.Sub(f, dir)
	if err != nil {
		panic(err) // embedded at build time; missing means a broken build
	}
	return sub
}
