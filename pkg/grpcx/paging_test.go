package grpcx_test

import (
	"errors"
	"slices"
	"testing"

	"github.com/doorstep/doorstep/pkg/grpcx"
)

func TestPageTokens(t *testing.T) {
	tok := grpcx.PageToken("haixin", "haixin-3-2-502")
	if after, ok := grpcx.ParsePageToken(tok, "haixin"); !ok || after != "haixin-3-2-502" {
		t.Errorf("round trip: %q, %v", after, ok)
	}
	if after, ok := grpcx.ParsePageToken("", "haixin"); !ok || after != "" {
		t.Errorf("no token: %q, %v; want the first page", after, ok)
	}
	for name, tok := range map[string]string{
		"another scope":                grpcx.PageToken("jinqiao", "jinqiao-1-1-101"),
		"a scope that starts the same": grpcx.PageToken("haixin-east", "haixin-east-1-1-101"),
		"not base64":                   "%%%",
		"no key":                       grpcx.PageToken("haixin", ""),
	} {
		if _, ok := grpcx.ParsePageToken(tok, "haixin"); ok {
			t.Errorf("%s: token accepted", name)
		}
	}
	for _, c := range []struct {
		asked int32
		want  int
	}{{0, 500}, {-3, 500}, {1, 1}, {1000, 1000}, {5000, grpcx.MaxPageSize}} {
		if got := grpcx.PageSize(c.asked, 500); got != c.want {
			t.Errorf("PageSize(%d, 500) = %d; want %d", c.asked, got, c.want)
		}
	}
}

func TestPages(t *testing.T) {
	pages := map[string][]int{"": {1, 2}, "b": {3, 4}, "c": {5}}
	next := map[string]string{"": "b", "b": "c", "c": ""}
	var asked []string
	all, err := grpcx.Pages(func(token string) ([]int, string, error) {
		asked = append(asked, token)
		return pages[token], next[token], nil
	})
	if err != nil || !slices.Equal(all, []int{1, 2, 3, 4, 5}) || !slices.Equal(asked, []string{"", "b", "c"}) {
		t.Errorf("Pages = %v, %v after asking %q", all, err, asked)
	}
	failed := errors.New("unavailable")
	if _, err := grpcx.Pages(func(token string) ([]int, string, error) {
		if token == "b" {
			return nil, "", failed
		}
		return pages[token], next[token], nil
	}); !errors.Is(err, failed) {
		t.Errorf("a failing page: err = %v", err)
	}
	if _, err := grpcx.Pages(func(string) ([]int, string, error) { return []int{1}, "same", nil }); err == nil {
		t.Error("a listing that repeats its token never ended")
	}
}
