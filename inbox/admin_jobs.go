package inbox

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/cakemail-go/webhooks/inbox/internal/sqldb"
)

// jobAction is one of River UI's changes to jobs (retry, delete, cancel),
// made by the inbox instead of River UI: River's own would re-run a
// completed delivery, delete one that has not run, or cancel one mid-batch.
// Each is one statement per chunk of ids that checks the job's state and
// changes it at once, so it changes only the jobs it may, whatever another
// operator, a cakemail-inbox command or River does at the same moment.
type jobAction struct {
	name   string // retry, delete, cancel: the log's word
	done   string // Retried, Deleted, Cancelled
	rule   string // which jobs it takes
	change func(ctx context.Context, c sqldb.Conn, ids []int64) ([]int64, error)
	// why says, by the state of a job it left alone, what that job is to it.
	why map[string]string
	// deliveriesOnly: a job of another kind is left alone.
	deliveriesOnly bool
}

// jobActions are River UI's three changes to jobs; the rules are
// OPERATING.md's.
func jobActions(jobTimeout time.Duration) []*jobAction {
	return []*jobAction{{
		name: "retry", done: "Retried",
		rule: "Only a dead letter (discarded or cancelled) can be retried",
		change: func(ctx context.Context, c sqldb.Conn, ids []int64) ([]int64, error) {
			return sqldb.Requeue(ctx, c, sqldb.DeadStates, ids)
		},
		deliveriesOnly: true,
		why: map[string]string{
			"completed": "to run a completed delivery again, use cakemail-inbox replay",
			"waiting":   "it waits to run: retried already, or not dead",
			"running":   "it runs now",
		},
	}, {
		name: "delete", done: "Deleted",
		rule:   "Only a dead letter (discarded or cancelled) can be deleted",
		change: sqldb.DeleteDead,
		why: map[string]string{
			"completed": "a completed delivery is how a resend is recognised, and not applied twice; River removes it after the duplicate window",
			"waiting":   "it has not been handled: deleting it would lose an acknowledged event",
			"running":   "it runs now",
		},
	}, {
		name: "cancel", done: "Cancelled",
		rule:   "Only a job waiting to run (available, scheduled or retryable) can be cancelled",
		change: sqldb.CancelWaiting,
		why: map[string]string{
			"completed": "it was handled",
			"dead":      "it is a dead letter already",
			"running":   fmt.Sprintf("it runs now, and finishes or fails within the job timeout (%s)", jobTimeout),
		},
	}}
}

// stateClass groups River's job states as the rules speak of them.
func stateClass(state string) string {
	switch {
	case slices.Contains(sqldb.DeadStates, state):
		return "dead"
	case slices.Contains(sqldb.WaitingStates, state):
		return "waiting"
	}
	return state // running, completed
}

// maxJobsPerRequest is River UI's own limit on one request's ids.
const maxJobsPerRequest = 1000

// jobsRequest is River UI's body for its job changes: {"ids":["12","13"]};
// River UI sends ids as strings, and takes numbers too.
type jobsRequest struct {
	IDs []jobID `json:"ids"`
}

type jobID int64

func (id *jobID) UnmarshalJSON(b []byte) error {
	s := string(b)
	if unquoted, err := strconv.Unquote(s); err == nil {
		s = unquoted
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n <= 0 {
		return fmt.Errorf("%s is not a job id", b)
	}
	*id = jobID(n)
	return nil
}

// jobsAnswer is what River UI's front end reads: status on success, message
// on an error (shown to the operator), with the ids changed either way.
type jobsAnswer struct {
	Status  string   `json:"status,omitempty"`
	Message string   `json:"message,omitempty"`
	IDs     []string `json:"ids"`
}

// handler serves the action at River UI's endpoint: 200 when every job was
// changed, 409 naming each job left alone and why, 400 for a body River
// UI would not send.
func (a *jobAction) handler(conn sqldb.Conn, log *slog.Logger) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		var req jobsRequest
		dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, 1<<20))
		if err := dec.Decode(&req); err != nil {
			writeJobsAnswer(w, http.StatusBadRequest, jobsAnswer{Message: `Invalid request: want {"ids":["12"]}: ` + err.Error()})
			return
		}
		if len(req.IDs) == 0 || len(req.IDs) > maxJobsPerRequest {
			writeJobsAnswer(w, http.StatusBadRequest, jobsAnswer{Message: fmt.Sprintf("Invalid request: want 1 to %d job ids.", maxJobsPerRequest)})
			return
		}
		var ids []int64
		for _, id := range req.IDs {
			if !slices.Contains(ids, int64(id)) {
				ids = append(ids, int64(id))
			}
		}
		changed, err := a.change(r.Context(), conn, ids)
		log.Info("inbox: admin "+a.name, "requested", len(ids), "changed", len(changed), "remote", r.RemoteAddr)
		answer := jobsAnswer{IDs: make([]string, len(changed))}
		for i, id := range changed {
			answer.IDs[i] = strconv.FormatInt(id, 10)
		}
		if err != nil {
			log.Error("inbox: admin "+a.name, "err", err)
			answer.Message = fmt.Sprintf("%s %d of %d jobs, then failed: %s", a.done, len(changed), len(ids), err)
			writeJobsAnswer(w, http.StatusInternalServerError, answer)
			return
		}
		if len(changed) == len(ids) {
			answer.Status = "ok"
			writeJobsAnswer(w, http.StatusOK, answer)
			return
		}
		answer.Message = a.explain(r.Context(), conn, ids, changed)
		writeJobsAnswer(w, http.StatusConflict, answer)
	}
}

// maxExplained bounds how many jobs left alone an answer names.
const maxExplained = 10

// explain tells the operator which jobs were left alone, and why.
func (a *jobAction) explain(ctx context.Context, conn sqldb.Conn, ids, changed []int64) string {
	var left []int64
	for _, id := range ids {
		if _, ok := slices.BinarySearch(changed, id); !ok {
			left = append(left, id)
		}
	}
	jobs, err := sqldb.Jobs(ctx, conn, left[:min(len(left), maxExplained)])
	var reasons []string
	for _, id := range left[:min(len(left), maxExplained)] {
		job, ok := jobs[id]
		switch {
		case err != nil:
			reasons = append(reasons, fmt.Sprintf("job %d (its state could not be read)", id))
		case !ok:
			reasons = append(reasons, fmt.Sprintf("job %d does not exist", id))
		case a.deliveriesOnly && job.Kind != sqldb.DeliveryKind:
			reasons = append(reasons, fmt.Sprintf("job %d is not a delivery (kind %s)", id, job.Kind))
		case a.why[stateClass(job.State)] != "":
			reasons = append(reasons, fmt.Sprintf("job %d is %s: %s", id, job.State, a.why[stateClass(job.State)]))
		default:
			reasons = append(reasons, fmt.Sprintf("job %d is %s", id, job.State))
		}
	}
	if more := len(left) - maxExplained; more > 0 {
		reasons = append(reasons, fmt.Sprintf("and %d more", more))
	}
	return fmt.Sprintf("%s %d of %d jobs. %s; left alone: %s.", a.done, len(changed), len(ids), a.rule, strings.Join(reasons, "; "))
}

func writeJobsAnswer(w http.ResponseWriter, code int, answer jobsAnswer) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(code)
	json.NewEncoder(w).Encode(answer) //nolint:errcheck // the client went away
}
