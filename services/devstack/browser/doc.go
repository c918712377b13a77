// Package browser holds the browser tests: the real stack (stack.Start) driven through its pages
// in headless Chromium (Debian's chromium, through chromedp), as the people in SPEC.md use it.
// Chromium is required: without it the tests fail and say how to install it.
package browser
