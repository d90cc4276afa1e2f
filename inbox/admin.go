package inbox

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"sync"

	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/riverqueue/river"
	"riverqueue.com/riverui"

	"github.com/cakemail-go/webhooks/inbox/internal/sqldb"
)

// AdminHandler serves what an operator needs, for a private address:
//
//   - GET /metrics: the inbox's metrics in Prometheus text format.
//   - /riverui/: River UI, to find dead letters, read their errors and retry them.
//
// It serves its operator only: requests for a host name other than the
// address they reached, a loopback name or one WithAdminHosts adds are
// refused (421), as are changes a browser marks cross-site (403); no page
// may frame it. River UI's retry moves only dead letters, and its delete and
// cancel take only what cannot lose or repeat a delivery (OPERATING.md). It
// has no authentication of its own: wrap it in yours on an address other
// hosts reach. Mount it at the root of its own server or mux, e.g.
//
//	go http.ListenAndServe("127.0.0.1:9090", ib.AdminHandler())
func (ib *Inbox) AdminHandler() http.Handler { return ib.admin }

// riverUIPrefix is where AdminHandler serves River UI.
const riverUIPrefix = "/riverui"

// newAdminHandler builds the admin mux. River UI's background services (its
// cached job counts) start with the first request to it and stop when the
// inbox closes its database: an admin port nobody opens costs nothing.
func newAdminHandler[TTx any](ib *Inbox, client *river.Client[TTx], conn sqldb.Conn, cfg *config) (http.Handler, error) {
	ui, err := riverui.NewHandler(&riverui.HandlerOpts{
		Endpoints: riverui.NewEndpoints(client, nil),
		Logger:    slog.New(minLevel{ib.log.Handler(), slog.LevelWarn}).With("component", "riverui"),
		Prefix:    riverUIPrefix,
	})
	if err != nil {
		return nil, fmt.Errorf("inbox: River UI: %w", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	lazy := &lazyStart{h: ui, ctx: ctx, log: ib.log}
	// Stop River UI's services before the database closes under them.
	closeDB := ib.closeDB
	ib.closeDB = func() {
		cancel()
		if closeDB != nil {
			closeDB()
		}
	}

	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(ib.metrics.registry, promhttp.HandlerOpts{
		ErrorLog:      promLogger{ib.log},
		ErrorHandling: promhttp.ContinueOnError, // a gauge the database cannot give spoils no other metric
	}))
	// River UI reads everything; of its changes, those to jobs are the
	// inbox's (admin_jobs.go), and pausing a queue changes no job. Any other
	// change a later River UI adds is not served until it is looked at.
	mux.Handle("GET "+riverUIPrefix+"/", lazy)
	for _, a := range jobActions(cfg.jobTimeout) {
		mux.Handle("POST "+riverUIPrefix+"/api/jobs/"+a.name, a.handler(conn, ib.log))
	}
	for _, pattern := range []string{"PUT /api/queues/{name}/pause", "PUT /api/queues/{name}/resume", "PATCH /api/queues/{name}"} {
		method, path, _ := strings.Cut(pattern, " ")
		mux.Handle(method+" "+riverUIPrefix+path, lazy)
	}
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		fmt.Fprint(w, `<!doctype html><title>cakemail inbox</title><ul><li><a href="metrics">metrics</a><li><a href="riverui/">River UI</a></ul>`)
	})
	return newAdminGuard(mux, cfg.adminHosts, ib.log), nil
}

// lazyStart starts River UI's handler on its first request.
type lazyStart struct {
	h    *riverui.Handler
	ctx  context.Context
	log  *slog.Logger
	once sync.Once
}

func (l *lazyStart) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	l.once.Do(func() {
		if err := l.h.Start(l.ctx); err != nil {
			// The UI still answers; only its cached counts are missing.
			l.log.Warn("inbox: starting River UI's background services", "err", err)
		}
	})
	l.h.ServeHTTP(w, r)
}

// promLogger sends promhttp's errors (a gauge the database could not give) to the inbox's log.
type promLogger struct{ log *slog.Logger }

func (p promLogger) Println(v ...any) { p.log.Warn("inbox: metrics: " + fmt.Sprint(v...)) }
