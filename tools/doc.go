// Package tools pins the code generators and command-line tools the build uses, as Go tool
// directives, so a clean clone fetches exactly these versions through the module proxy
// (`go tool buf`, `go tool grpcurl`, ...). It has no code of its own.
package tools
