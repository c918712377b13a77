module github.com/doorstep/doorstep/services/order

go 1.26.7

replace (
	github.com/doorstep/doorstep/pkg => ../../pkg
	github.com/doorstep/doorstep/proto => ../../proto
)
