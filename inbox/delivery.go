package inbox

import (
	"context"
	"errors"
	"fmt"
)

// Tx is the transaction a handler writes its effects in. It commits together
// with the job's completion: both happen, or neither does. It begins at the
// first Exec, so do slow work (calls to other services) before writing, not
// after: while a handler holds it, other deliveries' effects wait, and on
// SQLite so do acknowledgements. A handler may keep it for WithTxTimeout (2 s
// by default) after its first Exec; past that, its effects are rolled back
// and the delivery is retried. It ends when the handler returns: later calls
// fail at once with ErrTxDone. Calls from several goroutines run one at a
// time; a handler that returns while one is running waits for it.
type Tx interface {
	// Exec runs a statement with $1-style placeholders and reports the rows it changed.
	Exec(ctx context.Context, query string, args ...any) (int64, error)
}

// Delivery is what a handler learns about the delivery beside its event.
type Delivery struct {
	Tx         Tx     // where the handler's effects go
	BodySHA256 string // hex SHA-256 of the body as received
	Attempt    int    // 1 on the first run, more on retries
	JobID      int64  // the River job's id
	Subscriber string // the subscriber whose router runs: DefaultSubscriber, or a WithSubscriber name
}

type deliveryKey struct{}

// DeliveryFromContext returns the delivery a handler is running for.
func DeliveryFromContext(ctx context.Context) (*Delivery, bool) {
	d, ok := ctx.Value(deliveryKey{}).(*Delivery)
	return d, ok
}

// DriverTx returns the delivery's transaction in the River driver's own type
// (pgx.Tx for riverpgxv5, *sql.Tx for riversqlite), for effects written with
// pgx, sqlc or database/sql code. It begins the transaction if no Exec has,
// and ends with the Tx.
//
// On Postgres it is a pgx.Tx of the inbox's own: its calls go through the
// Tx, and fail with ErrTxDone once the Tx has ended, rows and batches
// included; Commit and Rollback are refused (return from the handler
// instead), while Begin gives a savepoint the handler commits or rolls back
// itself; Conn and LargeObjects reach the connection directly. On SQLite it
// is the batch's *sql.Tx itself, a concrete type the inbox cannot wrap or
// take back: use it only while the handler runs, and pass it the handler's
// context, which is cancelled when the handler's time is up. A statement
// through it after that runs in whatever the batch does next, or fails with
// sql.ErrTxDone once the batch has ended.
func DriverTx[TTx any](ctx context.Context) (TTx, error) {
	var zero TTx
	d, ok := DeliveryFromContext(ctx)
	if !ok {
		return zero, errors.New("inbox: DriverTx called outside a delivery's handler")
	}
	t, ok := d.Tx.(*jobTx[TTx])
	if !ok {
		return zero, fmt.Errorf("inbox: DriverTx[%T] does not match the River driver's transaction type", zero)
	}
	return t.driverTx(ctx)
}
