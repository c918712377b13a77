package web

import "testing"

func TestLanguage(t *testing.T) {
	for header, want := range map[string]string{
		"":                             "zh-CN",
		"en-US,en;q=0.9":               "en",
		"zh-CN,zh;q=0.9,en;q=0.8":      "zh-CN",
		"fr-FR, en;q=0.5, zh-TW;q=0.7": "zh-CN",
		"de, en-GB;q=0.8":              "en",
		"zh;q=0.2, en;q=0.9":           "en",
		"ja":                           "zh-CN",
		"EN":                           "en",
	} {
		if got := Language(header); got != want {
			t.Errorf("Language(%q) = %q, want %q", header, got, want)
		}
	}
}
