package inbox

import (
	"github.com/riverqueue/river/rivertype"
)

// tracingMiddleware is River's OpenTelemetry middleware when WithTracing is set.
func tracingMiddleware(cfg *config) []rivertype.Middleware {
	return nil
}
