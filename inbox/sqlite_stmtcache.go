package inbox

import (
	"container/list"
	"context"
	"database/sql"
	"database/sql/driver"
	"sync"

	"modernc.org/sqlite"
)

// On SQLite, parsing a statement costs more than running it: River's
// statements are long, and the driver parses each one anew whenever it is
// run. Profiles of a burst of deliveries showed most of the database's time
// in the parser. The connections of stmtCacheDriver keep each statement
// prepared and run it again, as a server database would. database/sql
// prepares every statement on a connection that cannot run a query
// directly, and closes it after use: here that close only hands the
// statement back to the cache.

// stmtCacheDriverName is the database/sql name of the caching SQLite driver.
const stmtCacheDriverName = "cakemail-inbox-sqlite"

// maxCachedStatements bounds each connection's cache: River and the inbox
// run a few dozen distinct statements; an application's effects add theirs.
const maxCachedStatements = 256

func init() {
	sql.Register(stmtCacheDriverName, stmtCacheDriver{})
}

type stmtCacheDriver struct{}

func (stmtCacheDriver) Open(name string) (driver.Conn, error) {
	c, err := (&sqlite.Driver{}).Open(name)
	if err != nil {
		return nil, err
	}
	return &cachingConn{Conn: c, stmts: map[string]*list.Element{}, order: list.New()}, nil
}

// cachingConn wraps one SQLite connection. It deliberately implements
// neither driver.ExecerContext nor driver.QueryerContext.
type cachingConn struct {
	driver.Conn
	mu    sync.Mutex
	stmts map[string]*list.Element // of *cachedStmt, most recently used first in order
	order *list.List
}

type cachedStmt struct {
	driver.Stmt
	query string
	conn  *cachingConn
	inUse bool
}

// Close returns the statement to the cache instead of finalizing it.
func (s *cachedStmt) Close() error {
	s.conn.mu.Lock()
	defer s.conn.mu.Unlock()
	s.inUse = false
	return nil
}

func (s *cachedStmt) ExecContext(ctx context.Context, args []driver.NamedValue) (driver.Result, error) {
	return s.Stmt.(driver.StmtExecContext).ExecContext(ctx, args)
}

func (s *cachedStmt) QueryContext(ctx context.Context, args []driver.NamedValue) (driver.Rows, error) {
	return s.Stmt.(driver.StmtQueryContext).QueryContext(ctx, args)
}

func (c *cachingConn) Prepare(query string) (driver.Stmt, error) {
	return c.PrepareContext(context.Background(), query)
}

func (c *cachingConn) PrepareContext(ctx context.Context, query string) (driver.Stmt, error) {
	c.mu.Lock()
	if e, ok := c.stmts[query]; ok {
		s := e.Value.(*cachedStmt)
		if !s.inUse {
			s.inUse = true
			c.order.MoveToFront(e)
			c.mu.Unlock()
			return s, nil
		}
	}
	c.mu.Unlock()
	inner, err := c.Conn.(driver.ConnPrepareContext).PrepareContext(ctx, query)
	if err != nil {
		return nil, err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.stmts[query]; ok {
		return inner, nil // a nested use of a statement in use: run this copy once
	}
	s := &cachedStmt{Stmt: inner, query: query, conn: c, inUse: true}
	c.stmts[query] = c.order.PushFront(s)
	for c.order.Len() > maxCachedStatements {
		oldest := c.order.Back()
		old := oldest.Value.(*cachedStmt)
		if old.inUse {
			break
		}
		c.order.Remove(oldest)
		delete(c.stmts, old.query)
		old.Stmt.Close()
	}
	return s, nil
}

func (c *cachingConn) Close() error {
	c.mu.Lock()
	for e := c.order.Front(); e != nil; e = e.Next() {
		e.Value.(*cachedStmt).Stmt.Close()
	}
	c.stmts, c.order = nil, list.New()
	c.mu.Unlock()
	return c.Conn.Close()
}

func (c *cachingConn) BeginTx(ctx context.Context, opts driver.TxOptions) (driver.Tx, error) {
	return c.Conn.(driver.ConnBeginTx).BeginTx(ctx, opts)
}

func (c *cachingConn) Ping(ctx context.Context) error {
	return c.Conn.(driver.Pinger).Ping(ctx)
}

func (c *cachingConn) ResetSession(ctx context.Context) error {
	return c.Conn.(driver.SessionResetter).ResetSession(ctx)
}

func (c *cachingConn) IsValid() bool {
	return c.Conn.(driver.Validator).IsValid()
}
