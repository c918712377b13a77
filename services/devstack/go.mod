module github.com/doorstep/doorstep/services/devstack

go 1.26.7

replace (
	github.com/doorstep/doorstep/pkg => ../../pkg
	github.com/doorstep/doorstep/proto => ../../proto
	github.com/doorstep/doorstep/services/courier => ../courier
	github.com/doorstep/doorstep/services/dispatch => ../dispatch
	github.com/doorstep/doorstep/services/gateway => ../gateway
	github.com/doorstep/doorstep/services/order => ../order
	github.com/doorstep/doorstep/services/supplier => ../supplier
	github.com/doorstep/doorstep/services/tracking => ../tracking
)

require (
	github.com/caarlos0/env/v11 v11.4.2
	github.com/chromedp/cdproto v0.159.0
	github.com/chromedp/chromedp v0.23.0
	github.com/doorstep/doorstep/pkg v0.0.0-00010101000000-000000000000
	github.com/doorstep/doorstep/proto v0.0.0-00010101000000-000000000000
	github.com/doorstep/doorstep/services/courier v0.0.0-00010101000000-000000000000
	github.com/doorstep/doorstep/services/dispatch v0.0.0-00010101000000-000000000000
	github.com/doorstep/doorstep/services/gateway v0.0.0-00010101000000-000000000000
	github.com/doorstep/doorstep/services/order v0.0.0-00010101000000-000000000000
	github.com/doorstep/doorstep/services/supplier v0.0.0-00010101000000-000000000000
	github.com/doorstep/doorstep/services/tracking v0.0.0-00010101000000-000000000000
	github.com/google/uuid v1.6.0
	github.com/jackc/pgx/v5 v5.13.0
	github.com/nats-io/nats-server/v2 v2.15.3
	github.com/nats-io/nats.go v1.55.0
	github.com/prometheus/procfs v0.23.0
	golang.org/x/crypto v0.58.0
	golang.org/x/sync v0.25.0
	golang.org/x/sys v0.50.0
	google.golang.org/grpc v1.85.0
	google.golang.org/protobuf v1.36.12
)

require (
	github.com/antithesishq/antithesis-sdk-go v0.9.0-default-no-op // indirect
	github.com/beorn7/perks v1.0.1 // indirect
	github.com/cespare/xxhash/v2 v2.3.0 // indirect
	github.com/go-json-experiment/json v0.0.0-20260213210345-44df1a37e875 // indirect
	github.com/golang-jwt/jwt/v5 v5.3.1 // indirect
	github.com/google/go-tpm v0.9.8 // indirect
	github.com/grpc-ecosystem/go-grpc-middleware/v2 v2.3.4 // indirect
	github.com/hashicorp/golang-lru/v2 v2.0.7 // indirect
	github.com/jackc/pgpassfile v1.0.0 // indirect
	github.com/jackc/pgservicefile v0.0.0-20240606120523-5a60cdf6a761 // indirect
	github.com/jackc/puddle/v2 v2.2.3 // indirect
	github.com/klauspost/compress v1.20.4 // indirect
	github.com/mfridman/interpolate v0.0.2 // indirect
	github.com/minio/highwayhash v1.0.4 // indirect
	github.com/munnerz/goautoneg v0.0.0-20191010083416-a7dc8b61c822 // indirect
	github.com/nats-io/jwt/v2 v2.8.3 // indirect
	github.com/nats-io/nkeys v0.4.17 // indirect
	github.com/nats-io/nuid v1.0.1 // indirect
	github.com/pressly/goose/v3 v3.30.0 // indirect
	github.com/prometheus/client_golang v1.25.0 // indirect
	github.com/prometheus/client_model v0.6.3 // indirect
	github.com/prometheus/common v0.72.0 // indirect
	github.com/sethvargo/go-retry v0.5.0 // indirect
	github.com/skip2/go-qrcode v0.0.0-20200617195104-da1b6568686e // indirect
	go.uber.org/multierr v1.11.0 // indirect
	golang.org/x/net v0.62.0 // indirect
	golang.org/x/text v0.44.0 // indirect
	golang.org/x/time v0.16.0 // indirect
	google.golang.org/genproto/googleapis/rpc v0.0.0-20261110000943-09e21b237f2c // indirect
)
