// Package metrics holds the Prometheus metrics of Doorstep's event pipeline and serves them.
// Each service gets its own registry (no global state), so several services in one process (the
// dev stack) each expose exactly their own figures on their own port.
package metrics

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Pipeline is the outbox and consumer metrics of one service.
type Pipeline struct {
	Registry *prometheus.Registry

	OutboxBacklog     prometheus.Gauge
	OutboxPublished   prometheus.Counter
	OutboxPublishErrs prometheus.Counter
	ConsumerApplied   *prometheus.CounterVec
	ConsumerRetried   *prometheus.CounterVec
	ConsumerDead      *prometheus.CounterVec
	ConsumerLag       *prometheus.GaugeVec
}

// NewPipeline registers the pipeline metrics, labelled with the service name.
func NewPipeline(service string) *Pipeline {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	f := prometheus.WrapRegistererWith(prometheus.Labels{"service": service}, reg)
	p := &Pipeline{
		Registry: reg,
		OutboxBacklog: prometheus.NewGauge(prometheus.GaugeOpts{Name: "doorstep_outbox_backlog",
			Help: "Events written to the outbox and not yet published."}),
		OutboxPublished: prometheus.NewCounter(prometheus.CounterOpts{Name: "doorstep_outbox_published_total",
			Help: "Events published from the outbox and acknowledged by JetStream."}),
		OutboxPublishErrs: prometheus.NewCounter(prometheus.CounterOpts{Name: "doorstep_outbox_publish_errors_total",
			Help: "Outbox batches that failed to publish and will be retried."}),
		ConsumerApplied: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "doorstep_consumer_applied_total",
			Help: "Events a consumer applied (redeliveries of applied events excluded)."}, []string{"consumer"}),
		ConsumerRetried: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "doorstep_consumer_retries_total",
			Help: "Handler failures that were sent back for redelivery."}, []string{"consumer"}),
		ConsumerDead: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "doorstep_consumer_dead_letters_total",
			Help: "Events a consumer gave up on and parked on the dead-letter stream."}, []string{"consumer"}),
		ConsumerLag: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "doorstep_consumer_lag",
			Help: "Messages in the stream the consumer has not been handed yet (JetStream num_pending)."}, []string{"consumer"}),
	}
	f.MustRegister(p.OutboxBacklog, p.OutboxPublished, p.OutboxPublishErrs, p.ConsumerApplied, p.ConsumerRetried, p.ConsumerDead, p.ConsumerLag)
	return p
}

// Serve exposes the registry on /metrics at lis until ctx is done.
func Serve(ctx context.Context, lis net.Listener, reg *prometheus.Registry) error {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg}))
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(lis) }()
	select {
	case err := <-errc:
		return fmt.Errorf("metrics on %s: %w", lis.Addr(), err)
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}
