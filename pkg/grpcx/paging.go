package grpcx

import (
	"encoding/base64"
	"fmt"
	"strings"
)

// Doorstep's list RPCs page as Google's API guide (AIP-158) describes: the caller asks for a
// page_size, the server answers at most that many and a next_page_token, empty on the last page.
// A token is the last key of the page with the scope of the listing it belongs to (a compound, a
// supplier and its filters), so a token given to another listing is refused, not misread.

// MaxPageSize is the most a page holds, whatever the caller asks for.
const MaxPageSize = 1000

// PageSize is the size of the page to answer for a request asking for requested: def when the
// request names none, at most MaxPageSize.
func PageSize(requested int32, def int) int {
	switch {
	case requested <= 0:
		return def
	case requested > MaxPageSize:
		return MaxPageSize
	default:
		return int(requested)
	}
}

// PageToken is the token of the page that follows the key after, in the listing scope.
func PageToken(scope, after string) string {
	return base64.RawURLEncoding.EncodeToString([]byte(scope + "\x00" + after))
}

// ParsePageToken is the key a token from PageToken carries: "" for no token (the first page),
// false for a token that is not one of scope's.
func ParsePageToken(token, scope string) (after string, ok bool) {
	if token == "" {
		return "", true
	}
	b, err := base64.RawURLEncoding.DecodeString(token)
	if err != nil {
		return "", false
	}
	s, after, found := strings.Cut(string(b), "\x00")
	return after, found && s == scope && after != ""
}

// Pages reads a whole listing: it calls list with each page's token in turn, "" for the first,
// until a page names no next one, and returns the items of every page in order.
func Pages[T any](list func(token string) (items []T, next string, err error)) ([]T, error) {
	var all []T
	for token := ""; ; {
		items, next, err := list(token)
		if err != nil {
			return nil, err
		}
		all = append(all, items...)
		if next == "" {
			return all, nil
		}
		if next == token {
			return nil, fmt.Errorf("listing repeats page token %q", token)
		}
		token = next
	}
}
