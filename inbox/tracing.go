package inbox

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"sync"
	"time"

	"github.com/riverqueue/river"
	"github.com/riverqueue/river/rivertype"
	"github.com/riverqueue/rivercontrib/otelriver"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
)

// tracerName names the inbox's tracer.
const tracerName = "github.com/cakemail-go/webhooks/inbox"

// acceptSpanName is the span from a delivery's arrival to its answer, the
// commit of its job included.
const acceptSpanName = "cakemail_inbox.accept"

// tracingMiddleware is River's OpenTelemetry middleware when WithTracing is
// set: a span for each insert and each handler run. The handler run's span
// links to the accept span of the request that brought the delivery.
func tracingMiddleware(cfg *config) []rivertype.Middleware {
	if !cfg.tracing {
		return nil
	}
	return []rivertype.Middleware{
		// First, so outermost: the linker below overrides the trace context
		// it records for the batch with each delivery's own.
		otelriver.NewMiddleware(&otelriver.MiddlewareConfig{EnableTracePropagation: true}),
		&acceptLinker{},
	}
}

// acceptSpans holds the span context of each delivery whose insert is under
// way, by body hash: the Acceptor commits on a goroutine of its own, in
// batches that mix many requests, so the request's context does not reach
// the insert.
var acceptSpans sync.Map // body_sha256 → *trace.SpanContext

// traceAccept starts the accept span of a delivery that arrived at start; the
// returned function ends it with the insert's result.
func traceAccept(r *http.Request, start time.Time, args DeliveryArgs, res *insertResult) func() {
	_, span := otel.Tracer(tracerName).Start(r.Context(), acceptSpanName,
		trace.WithTimestamp(start),
		trace.WithSpanKind(trace.SpanKindServer),
		trace.WithAttributes(
			attribute.String("body_sha256", args.BodySHA256),
			attribute.String("event_type", string(args.EventType)),
		))
	sc := span.SpanContext()
	registered := false
	if sc.IsValid() {
		_, loaded := acceptSpans.LoadOrStore(args.BodySHA256, &sc)
		registered = !loaded
	}
	return func() {
		if registered {
			acceptSpans.CompareAndDelete(args.BodySHA256, &sc)
		}
		switch {
		case res.err != nil:
			span.SetStatus(codes.Error, res.err.Error())
		case res.duplicate:
			span.SetAttributes(attribute.Bool("duplicate", true))
		}
		span.End()
	}
}

// acceptLinker writes each delivery's accept span into its job's metadata,
// where River's middleware finds it when the job runs.
type acceptLinker struct {
	river.MiddlewareDefaults
}

func (acceptLinker) InsertMany(ctx context.Context, manyParams []*rivertype.JobInsertParams, doInner func(context.Context) ([]*rivertype.JobInsertResult, error)) ([]*rivertype.JobInsertResult, error) {
	for _, p := range manyParams {
		if p.Kind != (DeliveryArgs{}).Kind() {
			continue
		}
		v, ok := acceptSpans.Load(bodySHA256(p.EncodedArgs))
		if !ok {
			continue
		}
		carrier := propagation.MapCarrier{}
		propagation.TraceContext{}.Inject(trace.ContextWithSpanContext(ctx, *v.(*trace.SpanContext)), carrier)
		meta := map[string]any{}
		if len(p.Metadata) > 0 && json.Unmarshal(p.Metadata, &meta) != nil {
			continue
		}
		for k, v := range carrier {
			meta[k] = v
		}
		if b, err := json.Marshal(meta); err == nil {
			p.Metadata = b
		}
	}
	return doInner(ctx)
}

// bodySHA256 reads body_sha256 from a delivery's encoded args.
func bodySHA256(encoded []byte) string {
	const prefix = `{"body_sha256":"`
	if rest, ok := bytes.CutPrefix(encoded, []byte(prefix)); ok && len(rest) > 64 && rest[64] == '"' {
		return string(rest[:64])
	}
	var args struct {
		BodySHA256 string `json:"body_sha256"`
	}
	json.Unmarshal(encoded, &args) //nolint:errcheck // no hash, no link
	return args.BodySHA256
}
