package inbox_test

import (
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/cakemail-go/webhooks/inbox"
)

// With WithTracing, a delivery yields a span from its request to its commit,
// and River's span for the handler run links back to it; a duplicate's
// request has a span of its own, and no run.
func TestTracingLinksTheAcknowledgementToTheHandlerRun(t *testing.T) {
	t.Parallel()
	exporter := tracetest.NewInMemoryExporter()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(exporter))
	t.Cleanup(func() { tp.Shutdown(t.Context()) })
	otel.SetTracerProvider(tp) // the only test that sets it

	ti := startInbox(t, databases[0].url(t), nil, inbox.WithTracing())
	body := payload("Email.Opened", "traced@example.com")
	require.Equal(t, http.StatusAccepted, ti.post(body, testSecret))
	require.Equal(t, http.StatusOK, ti.post(body, testSecret))
	ti.waitCount(t, 1, countProcessed, sha(body))

	var accepts []tracetest.SpanStub
	var work tracetest.SpanStub
	// The work span ends just after the effects commit.
	require.Eventually(t, func() bool {
		accepts = nil
		for _, s := range exporter.GetSpans() {
			switch s.Name {
			case "cakemail_inbox.accept":
				accepts = append(accepts, s)
			case "river.work":
				work = s
			}
		}
		return work.Name != ""
	}, 15*time.Second, 10*time.Millisecond, "no river.work span")
	require.Len(t, accepts, 2)
	for _, a := range accepts {
		assert.Contains(t, a.Attributes, attribute.String("body_sha256", sha(body)))
		assert.Contains(t, a.Attributes, attribute.String("event_type", "Email.Opened"))
	}
	assert.Contains(t, accepts[1].Attributes, attribute.Bool("duplicate", true))
	assert.Contains(t, work.Attributes, attribute.String("kind", "cakemail_delivery"))
	require.Len(t, work.Links, 1, "the handler run links to the request that brought it")
	assert.Equal(t, accepts[0].SpanContext.SpanID(), work.Links[0].SpanContext.SpanID())
	assert.Equal(t, accepts[0].SpanContext.TraceID(), work.Links[0].SpanContext.TraceID())
}
