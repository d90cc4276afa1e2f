package inbox

import (
	"fmt"
	"time"
)

// DefaultAcknowledgeTimeout is how long a delivery may wait for its commit
// by default before it is answered 503.
const DefaultAcknowledgeTimeout = 5 * time.Second

// faultOptions are the options that bound how long a fault can hold the
// inbox up.
type faultOptions struct {
	acknowledgeTimeout time.Duration // zero: DefaultAcknowledgeTimeout
}

func (f faultOptions) ackTimeout() time.Duration {
	if f.acknowledgeTimeout == 0 {
		return DefaultAcknowledgeTimeout
	}
	return f.acknowledgeTimeout
}

// WithAcknowledgeTimeout bounds how long a delivery waits for its commit,
// from the moment it reaches the inbox to its answer: past it, the delivery
// is answered 503 with Retry-After and Cakemail sends it again (a duplicate,
// answered 200, if its commit finished after all). The default is 5 seconds,
// Cakemail's own limit. It applies to Open and NewAcceptor.
func WithAcknowledgeTimeout(d time.Duration) Option {
	return func(c *config) error {
		if d < 100*time.Millisecond || d > time.Minute {
			return fmt.Errorf("inbox: WithAcknowledgeTimeout(%s): want 100ms to 1m", d)
		}
		c.faults.acknowledgeTimeout = d
		return nil
	}
}
