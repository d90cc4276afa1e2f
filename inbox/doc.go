// Package inbox receives Cakemail webhook deliveries durably: a 2xx means the
// delivery is committed to a database, and its handler's effects commit in
// the same transaction that completes its job, so a crash can neither lose an
// acknowledged event nor apply it twice.
//
// It is built on River (https://riverqueue.com): each verified delivery is a
// River job, worked through a webhooks.Router. The same code runs on SQLite
// (embedded, one process per database) and on Postgres (any number of
// processes).
//
// # Receiving
//
// Open connects and migrates; mount the Inbox behind
// webhooks.Verifier.Middleware; Start and Stop it around serving:
//
//	ib, err := inbox.Open(ctx, "sqlite:///var/lib/svc/inbox.db", router)
//	mux.Handle("POST /webhooks/cakemail", verifier.Middleware(ib))
//	mux.Handle("GET /healthz", ib.HealthHandler())
//	err = ib.Start(ctx)
//	defer ib.Stop(ctx)
//
// The Inbox answers 202 for a new delivery once it is committed, 200 for a
// duplicate, 400 for a delivery created longer ago than the duplicate window,
// and 503 with Retry-After when the delivery could not be stored. Deliveries
// that arrive while a commit runs share the next one.
//
// # Effects
//
// A handler finds its delivery with DeliveryFromContext and writes through
// Delivery.Tx, with $1-style placeholders on both databases; DriverTx gives
// the same transaction as pgx.Tx or *sql.Tx. The transaction begins at the
// first statement: do slow work before writing, since other deliveries'
// effects wait while a handler holds it, and on SQLite acknowledgements too.
// A handler keeps it at most WithTxTimeout (2 s by default) after its first
// statement: past that, its context is cancelled, its effects are rolled
// back, and River retries the delivery. The transaction ends when the
// handler returns: later calls fail with ErrTxDone. Many deliveries' effects
// commit in one transaction, each behind a savepoint, so one failing handler
// never rolls back another's.
//
// # Duplicates and replays
//
// A delivery is identified by the SHA-256 of its body: Cakemail's carry no
// id, and a retry resends the same bytes. The same body again is answered 200
// and not processed, for as long as the job stays in River's table: the
// duplicate window, 7 days by default (WithDuplicateWindow). A delivery whose
// created_on is older than the window is refused, and logged with its age:
// past the window it could not be told from a captured delivery replayed.
//
// # Failures
//
// A handler's error is logged at WARN, a panic at ERROR with its stack, each
// with the event type, job id and attempt; River retries with backoff
// (attempt^4 seconds) up to WithMaxAttempts, then keeps the job as a dead
// letter. An error retrying cannot fix (data that does not decode into the
// handler's type, webhooks.ErrInvalidEvent) makes a dead letter at once.
// Dead letters are listed and retried with River UI (AdminHandler) or the
// cakemail-inbox command.
//
// # Crashes, restarts, full disks and hangs
//
// Each process beats a heartbeat row every second; the running jobs of a
// process whose heartbeat stopped are handed to a live one within seconds,
// and on Postgres a frozen process's open transaction is ended after 20 s
// idle, freeing the jobs it held. A heartbeat is a write, so the health
// check, which reads only what the heartbeats and commits recorded, turns
// unhealthy while the database is unreachable, full, read-only or frozen,
// and answers at once whatever the filesystem does. Every delivery is
// answered within WithAcknowledgeTimeout (5 s) of its arrival, with 503 if
// it was not stored by then. SQLite runs in WAL mode with synchronous=FULL;
// its log is checkpointed in the background and kept under 64 MiB, and an
// inbox whose database file, log or directory is removed or replaced stops
// acknowledging and saves a copy of what it stored.
//
// # Subscribers
//
// WithSubscriber adds a consumer beside the router given to Open: every
// delivery its router handles gets a job of its own, in a queue of its own,
// inserted in the same commit, so each consumer fails, retries, dies and is
// replayed on its own; see ExampleWithSubscriber.
//
// # Order keys
//
// WithOrderKey makes the newest event win per key: an older event that
// arrives late (a retry, a replay) completes without running its handler,
// checked and recorded in the delivery's own transaction; see
// ExampleWithOrderKey.
//
// # Bring your own River
//
// A service that already runs River builds its client's configuration with
// RiverConfig, registers NewWorker on its own workers and acknowledges
// through NewAcceptor over its own client; see Example_bringYourOwnRiver.
package inbox
