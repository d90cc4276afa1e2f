package inbox

import (
	"fmt"
	"time"
)

// DefaultTxTimeout bounds by default how long a handler keeps its Tx after
// its first statement. On SQLite, acknowledgements and heartbeats wait while
// a handler keeps it: 2 s keeps both answering within 3 s.
const DefaultTxTimeout = 2 * time.Second

// WithTxTimeout bounds how long a handler may keep its Tx after its first
// statement, on both databases. Past it, the handler's context is cancelled,
// its effects are rolled back, its later calls fail with ErrTxDone, and River
// retries the delivery with backoff; the handler's cooperation is not needed.
// The default is DefaultTxTimeout.
func WithTxTimeout(d time.Duration) Option {
	return option("WithTxTimeout", forWorker, func(c *config) error {
		if d <= 0 {
			return fmt.Errorf("inbox: WithTxTimeout(%s): want a positive duration", d)
		}
		c.txTimeout = d
		return nil
	})
}

func (c *config) txTimeoutOrDefault() time.Duration {
	if c.txTimeout == 0 {
		return DefaultTxTimeout
	}
	return c.txTimeout
}
