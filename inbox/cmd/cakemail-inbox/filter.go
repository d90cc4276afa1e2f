package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/riverqueue/river/rivertype"

	"github.com/cakemail-go/webhooks"
	"github.com/cakemail-go/webhooks/inbox"
	"github.com/cakemail-go/webhooks/inbox/internal/sqldb"
)

var deadStates = []rivertype.JobState{rivertype.JobStateDiscarded, rivertype.JobStateCancelled}

// allStates are every state a job can be in.
var allStates = []rivertype.JobState{
	rivertype.JobStateAvailable, rivertype.JobStateCancelled, rivertype.JobStateCompleted,
	rivertype.JobStateDiscarded, rivertype.JobStatePending, rivertype.JobStateRetryable,
	rivertype.JobStateRunning, rivertype.JobStateScheduled,
}

// decodeDelivery reads a job's args, as the inbox writes them.
func decodeDelivery(job *rivertype.JobRow) inbox.DeliveryArgs {
	var d inbox.DeliveryArgs
	json.Unmarshal(job.EncodedArgs, &d) //nolint:errcheck // an undecodable job lists with what it has
	return d
}

// subscriberOf names the subscriber a job runs for.
func subscriberOf(d inbox.DeliveryArgs) string {
	if d.Subscriber == "" {
		return inbox.DefaultSubscriber
	}
	return d.Subscriber
}

// filter selects deliveries by type, subscriber, finalization time and text.
type filter struct {
	eventType    webhooks.EventType // canonical; "" for any
	subscriber   string             // "" for any
	since, until time.Time          // zero for unbounded
	grep         string             // lower case; "" for any
}

// filterFlags are the flags as given; parse checks them.
type filterFlags struct {
	eventType, subscriber, since, until, grep string
}

// subscriberFlag adds --subscriber to a command.
func (ff *filterFlags) subscriberFlag(fs *flags, what string) {
	fs.StringVar(&ff.subscriber, "subscriber", "", what+" of this subscriber only (default, or a name given to inbox.WithSubscriber)")
}

func (ff *filterFlags) parse(requireSince bool) (filter, error) {
	var f filter
	if ff.eventType != "" {
		t, err := webhooks.ParseEventType(ff.eventType)
		if err != nil {
			return f, usageErrorf("--type: %s", err)
		}
		f.eventType = t
	}
	if ff.subscriber != "" && ff.subscriber != inbox.DefaultSubscriber && !sqldb.ValidSubscriberName(ff.subscriber) {
		return f, usageErrorf("--subscriber %q: not a subscriber's name (default, or a lower-case identifier such as crm)", ff.subscriber)
	}
	f.subscriber = ff.subscriber
	var err error
	if requireSince && ff.since == "" {
		return f, usageErrorf("--since is required, e.g. --since 24h")
	}
	if f.since, err = parseWhen("--since", ff.since); err != nil {
		return f, err
	}
	if f.until, err = parseWhen("--until", ff.until); err != nil {
		return f, err
	}
	if !f.since.IsZero() && !f.until.IsZero() && f.until.Before(f.since) {
		return f, usageErrorf("--until is before --since")
	}
	f.grep = strings.ToLower(ff.grep)
	return f, nil
}

// finalizedIn reports whether the job finished within the filter's window.
func (f filter) finalizedIn(job *rivertype.JobRow) bool {
	if job.FinalizedAt == nil {
		return f.since.IsZero() && f.until.IsZero()
	}
	return (f.since.IsZero() || !job.FinalizedAt.Before(f.since)) && (f.until.IsZero() || !job.FinalizedAt.After(f.until))
}

func (f filter) matches(job *rivertype.JobRow) bool {
	if !f.finalizedIn(job) {
		return false
	}
	d := decodeDelivery(job)
	if f.eventType != "" && d.EventType != f.eventType {
		return false
	}
	if f.subscriber != "" && subscriberOf(d) != f.subscriber {
		return false
	}
	if f.grep != "" {
		if bytes.Contains(bytes.ToLower(d.Body), []byte(f.grep)) {
			return true
		}
		for _, e := range job.Errors {
			if strings.Contains(strings.ToLower(e.Error), f.grep) {
				return true
			}
		}
		return false
	}
	return true
}

// pastSince reports whether a job listed newest finalized first is older than
// the window, and so are all after it.
func (f filter) pastSince(job *rivertype.JobRow) bool {
	return !f.since.IsZero() && job.FinalizedAt != nil && job.FinalizedAt.Before(f.since)
}

// parseWhen reads a time: a duration before now (90m, 24h, 7d, 1d12h) or an
// RFC 3339 time. "" is the zero time.
func parseWhen(name, s string) (time.Time, error) {
	if s == "" {
		return time.Time{}, nil
	}
	if t, err := time.Parse(time.RFC3339, s); err == nil {
		return t, nil
	}
	d, err := parseDuration(s)
	if err != nil {
		return time.Time{}, usageErrorf("%s %q: want a duration like 90m, 24h or 7d, or an RFC 3339 time", name, s)
	}
	return now().Add(-d), nil
}

// parseDuration is time.ParseDuration with days: 7d, 1d12h.
func parseDuration(s string) (time.Duration, error) {
	var days time.Duration
	if i := strings.IndexByte(s, 'd'); i >= 0 {
		n, err := strconv.ParseUint(s[:i], 10, 16)
		if err != nil {
			return 0, fmt.Errorf("bad days in %q", s)
		}
		days = time.Duration(n) * 24 * time.Hour
		s = s[i+1:]
		if s == "" {
			s = "0s"
		}
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		return 0, err
	}
	if d += days; d <= 0 {
		return 0, fmt.Errorf("not a positive duration")
	}
	return d, nil
}

// openFiltered checks the filter flags, then opens the database: a usage
// mistake is told before anything is opened.
func (c *cli) openFiltered(ctx context.Context, ff *filterFlags, requireSince bool) (filter, store, error) {
	f, err := ff.parse(requireSince)
	if err != nil {
		return filter{}, nil, err
	}
	s, err := c.open(ctx)
	return f, s, err
}
