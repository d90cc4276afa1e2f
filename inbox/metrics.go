package inbox

import (
	"context"
	"errors"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/riverqueue/river"

	"github.com/cakemail-go/webhooks"
	"github.com/cakemail-go/webhooks/inbox/internal/sqldb"
)

// Outcomes of a delivery, the values of cakemail_inbox_deliveries_total's label.
const (
	outcomeAccepted    = "accepted"
	outcomeDuplicate   = "duplicate"
	outcomeUnavailable = "unavailable"
)

// metrics are one Inbox's Prometheus metrics. Every label takes a small fixed
// set of values: never event data, never ids. A nil *metrics records nothing,
// for a Worker or Acceptor used without an Inbox.
type metrics struct {
	registry    *prometheus.Registry
	deliveries  *prometheus.CounterVec
	refusals    *prometheus.CounterVec
	ackDuration prometheus.Histogram
	jobs        *prometheus.CounterVec
	jobDuration *prometheus.HistogramVec

	// The labelled series, looked up once: recording is an atomic add.
	byOutcome    map[string]prometheus.Counter
	bySubscriber map[string]*jobSeries
}

// jobSeries are one subscriber's job metrics.
type jobSeries struct {
	completed, stale, failed, dead prometheus.Counter
	duration                       prometheus.Observer
}

// newMetrics makes the metrics of an inbox whose subscribers are those
// named: they label the job metrics, and no other value ever does.
func newMetrics(db sqldb.Conn, subscribers []string) *metrics {
	m := &metrics{
		registry: prometheus.NewRegistry(),
		deliveries: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "cakemail_inbox_deliveries_total",
			Help: "Verified deliveries, by outcome: accepted (stored, 202), duplicate (already stored, 200), unavailable (not stored, 503).",
		}, []string{"outcome"}),
		refusals: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "cakemail_inbox_refused_total",
			Help: "Deliveries refused before storing, by reason.",
		}, []string{"reason"}),
		ackDuration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "cakemail_inbox_ack_duration_seconds",
			Help:    "Time from a verified delivery's arrival to its answer, the commit included.",
			Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5},
		}),
		jobs: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "cakemail_inbox_jobs_total",
			Help: "Handler runs, by outcome: completed, stale (completed without running: a later event for its order key was applied), failed (River retries it), dead (sent to the dead letters); by subscriber.",
		}, []string{"outcome", "subscriber"}),
		jobDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "cakemail_inbox_job_duration_seconds",
			Help:    "Time a handler run took, waiting for its batch's commit included; by subscriber.",
			Buckets: prometheus.DefBuckets,
		}, []string{"subscriber"}),
	}
	m.byOutcome = map[string]prometheus.Counter{}
	for _, o := range []string{outcomeAccepted, outcomeDuplicate, outcomeUnavailable} {
		m.byOutcome[o] = m.deliveries.WithLabelValues(o)
	}
	for _, r := range refusalReasons {
		m.refusals.WithLabelValues(r.label)
	}
	m.bySubscriber = map[string]*jobSeries{}
	for _, name := range subscribers {
		m.bySubscriber[name] = &jobSeries{
			completed: m.jobs.WithLabelValues("completed", name),
			stale:     m.jobs.WithLabelValues("stale", name),
			failed:    m.jobs.WithLabelValues("failed", name),
			dead:      m.jobs.WithLabelValues("dead", name),
			duration:  m.jobDuration.WithLabelValues(name),
		}
	}
	m.registry.MustRegister(m.deliveries, m.refusals, m.ackDuration, m.jobs, m.jobDuration, &queueCollector{db: db, subscribers: subscribers})
	return m
}

func (m *metrics) delivered(outcome string, start time.Time) {
	if m == nil {
		return
	}
	m.byOutcome[outcome].Inc()
	m.ackDuration.Observe(time.Since(start).Seconds())
}

func (m *metrics) refused(err error) {
	if m == nil {
		return
	}
	m.refusals.WithLabelValues(refusalReason(err)).Inc()
}

func (m *metrics) jobDone(start time.Time, job *river.Job[DeliveryArgs], stale bool, err error) {
	if m == nil {
		return
	}
	series, ok := m.bySubscriber[job.Args.subscriber()]
	if !ok {
		return // a job of a subscriber this inbox does not have: a dead letter that says so
	}
	series.duration.Observe(time.Since(start).Seconds())
	var cancel *river.JobCancelError
	switch {
	case err == nil && stale:
		series.stale.Inc()
	case err == nil:
		series.completed.Inc()
	case errors.As(err, &cancel), job.Attempt >= job.MaxAttempts:
		series.dead.Inc()
	default:
		series.failed.Inc()
	}
}

// refusalReasons maps the verifier's errors to the refused_total label.
var refusalReasons = []struct {
	err   error
	label string
}{
	{webhooks.ErrMissingSignature, "missing_signature"},
	{webhooks.ErrMalformedSignature, "malformed_signature"},
	{webhooks.ErrSignatureMismatch, "signature_mismatch"},
	{webhooks.ErrBodyTooLarge, "body_too_large"},
	{webhooks.ErrUnreadableBody, "unreadable_body"},
	{webhooks.ErrInvalidEvent, "not_an_event"},
	// Before ErrTooOld, which it wraps: the inbox's own refusal, not the verifier's.
	{errTooOld, "older_than_window"},
	{webhooks.ErrTooOld, "too_old"},
	{webhooks.ErrTooNew, "too_new"},
	{nil, "other"},
}

func refusalReason(err error) string {
	for _, r := range refusalReasons {
		if r.err != nil && errors.Is(err, r.err) {
			return r.label
		}
	}
	return "other"
}

// OnReject counts a delivery the verifier refused, by reason. Pass it to
// webhooks.WithOnReject, alone or from a function of your own that also logs.
func (ib *Inbox) OnReject(r *http.Request, err error) {
	ib.metrics.refused(err)
}

// queueCollector reads the queue's gauges from the database at each scrape,
// so they are right across replicas and restarts; by subscriber, the
// configured ones always, and any other whose jobs are still there (a
// removed subscriber's dead letters stay in sight).
type queueCollector struct {
	db          sqldb.Conn
	subscribers []string
}

var (
	backlogDesc = prometheus.NewDesc("cakemail_inbox_backlog",
		"Deliveries waiting for a worker or for a retry, by subscriber.", []string{"subscriber"}, nil)
	oldestWaitingDesc = prometheus.NewDesc("cakemail_inbox_oldest_waiting_seconds",
		"Seconds since the oldest waiting delivery (new, or due for a retry) became due to run; 0 when none is due; by subscriber.", []string{"subscriber"}, nil)
	deadLettersDesc = prometheus.NewDesc("cakemail_inbox_dead_letters",
		"Deliveries whose attempts are exhausted or that cannot be handled as sent (discarded or cancelled), kept for an operator; by subscriber.", []string{"subscriber"}, nil)
)

func (c *queueCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- backlogDesc
	ch <- oldestWaitingDesc
	ch <- deadLettersDesc
}

func (c *queueCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	for _, g := range []struct {
		desc  *prometheus.Desc
		value string // per queue
		where string
	}{
		{backlogDesc, `count(*)`, `state IN ('available', 'retryable', 'scheduled')`},
		// The earliest scheduled_at of the backlog is its oldest due
		// delivery, or in the future when none is due yet (a negative age,
		// reported as 0). A retry's due time counts, not its first arrival.
		{oldestWaitingDesc, c.db.SecondsSince("min(scheduled_at)"), `state IN ('available', 'retryable', 'scheduled')`},
		{deadLettersDesc, `count(*)`, `state IN ('discarded', 'cancelled')`},
	} {
		values := map[string]int64{}
		for _, name := range c.subscribers {
			values[name] = 0
		}
		// One row per queue, "queue value": one read, so the two agree.
		rows, err := c.db.QueryStrings(ctx, `SELECT queue || ' ' || CAST(coalesce(`+g.value+`, 0) AS TEXT)
			FROM river_job WHERE kind = $1 AND `+g.where+` GROUP BY queue`, DeliveryArgs{}.Kind())
		if err != nil {
			ch <- prometheus.NewInvalidMetric(g.desc, errors.Join(errors.New("inbox: reading the queue"), err))
			continue
		}
		for _, row := range rows {
			queue, value, _ := strings.Cut(row, " ")
			n, _ := strconv.ParseInt(value, 10, 64)
			if name := sqldb.Subscriber(queue); name != "" {
				values[name] += max(n, 0)
			}
		}
		for name, v := range values {
			ch <- prometheus.MustNewConstMetric(g.desc, prometheus.GaugeValue, float64(v), name)
		}
	}
}
