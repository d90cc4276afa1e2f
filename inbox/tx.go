package inbox

import (
	"context"
	"database/sql"
	"fmt"

	"github.com/jackc/pgx/v5"
)

// execTx runs a statement in a River driver's transaction and reports the
// rows it changed. Both databases take $1-style placeholders.
func execTx[TTx any](ctx context.Context, tx TTx, query string, args ...any) (int64, error) {
	switch tx := any(tx).(type) {
	case pgx.Tx:
		tag, err := tx.Exec(ctx, query, args...)
		return tag.RowsAffected(), err
	case *sql.Tx:
		res, err := tx.ExecContext(ctx, query, args...)
		if err != nil {
			return 0, err
		}
		return res.RowsAffected()
	default:
		return 0, fmt.Errorf("inbox: no Exec for a %T transaction: use DriverTx", tx)
	}
}
