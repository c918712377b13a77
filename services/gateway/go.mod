module github.com/doorstep/doorstep/services/gateway

go 1.26.7

replace (
	github.com/doorstep/doorstep/pkg => ../../pkg
	github.com/doorstep/doorstep/proto => ../../proto
)

require (
	github.com/caarlos0/env/v11 v11.4.2
	github.com/doorstep/doorstep/pkg v0.0.0-00010101000000-000000000000
	github.com/doorstep/doorstep/proto v0.0.0-00010101000000-000000000000
	golang.org/x/sync v0.25.0
	google.golang.org/grpc v1.85.0
	google.golang.org/protobuf v1.36.12
)

require (
	github.com/google/uuid v1.6.0 // indirect
	github.com/grpc-ecosystem/go-grpc-middleware/v2 v2.3.4 // indirect
	golang.org/x/net v0.62.0 // indirect
	golang.org/x/sys v0.50.0 // indirect
	golang.org/x/text v0.44.0 // indirect
	google.golang.org/genproto/googleapis/rpc v0.0.0-20261110000943-09e21b237f2c // indirect
)
