package inbox

import (
	"crypto/sha256"
	"encoding/hex"
	"regexp"
	"strings"

	"github.com/riverqueue/river"
	"github.com/riverqueue/river/rivertype"

	"github.com/cakemail-go/webhooks"
	"github.com/cakemail-go/webhooks/inbox/internal/sqldb"
)

// DeliveryArgs is the River job for one verified delivery.
type DeliveryArgs struct {
	// BodySHA256 identifies the delivery: Cakemail's carry no id, so the same
	// signed body again is the same delivery. It alone makes the job unique.
	BodySHA256 string `json:"body_sha256" river:"unique"`
	// EventType is the event's canonical type, for an operator to find
	// deliveries by; the worker dispatches what the body says.
	EventType webhooks.EventType `json:"event_type"`
	// Body is the body byte for byte as it was verified. It is base64 in the
	// job's JSON, so no database can re-space, re-escape or refuse it.
	Body []byte `json:"body"`
	// EventCreatedAt is the event's creation time in Unix seconds, 0 when it
	// has none: how old an event the job can still apply, which bounds the
	// order keys' record (WithOrderKey).
	EventCreatedAt int64 `json:"event_created_at,omitempty"`
	// Subscriber names the router the job runs through (WithSubscriber),
	// empty for the default subscriber. It makes the job unique too, so
	// each subscriber recognises duplicates on its own.
	Subscriber string `json:"subscriber,omitempty" river:"unique"`
}

// NewDeliveryArgs returns the job for a verified body and its parsed event.
func NewDeliveryArgs(body []byte, event *webhooks.Event) DeliveryArgs {
	sum := sha256.Sum256(body)
	args := DeliveryArgs{BodySHA256: hex.EncodeToString(sum[:]), Body: body}
	if event != nil {
		args.EventType = event.Type
		if !event.CreatedAt.IsZero() {
			args.EventCreatedAt = event.CreatedAt.Unix()
		}
	}
	return args
}

// Kind names the job in River's table.
func (DeliveryArgs) Kind() string { return "cakemail_delivery" }

// InsertOpts makes a delivery unique by its body and subscriber for as long
// as River keeps the job, dead letters (discarded, cancelled) included, so an
// operator's dead letter is not silently replaced by a fresh copy. It puts
// the job in its subscriber's queue, and tags it for River UI, whose list
// shows tags and not args: the event type, with the dots River's tags cannot
// hold made underscores (Email_Opened), and the subscriber's name.
func (a DeliveryArgs) InsertOpts() river.InsertOpts {
	tags := []string{a.subscriber()}
	if t := eventTag(a.EventType); t != "" {
		tags = append([]string{t}, tags...)
	}
	return river.InsertOpts{
		Queue: sqldb.Queue(a.Subscriber),
		Tags:  tags,
		UniqueOpts: river.UniqueOpts{
			ByArgs: true,
			ByState: append(rivertype.UniqueOptsByStateDefault(),
				rivertype.JobStateDiscarded, rivertype.JobStateCancelled),
		},
	}
}

// subscriber is the name of the job's subscriber, DefaultSubscriber included.
func (a DeliveryArgs) subscriber() string {
	if a.Subscriber == "" {
		return DefaultSubscriber
	}
	return a.Subscriber
}

// forSubscriber is the same delivery's job for another subscriber.
func (a DeliveryArgs) forSubscriber(name string) DeliveryArgs {
	if name == DefaultSubscriber {
		name = ""
	}
	a.Subscriber = name
	return a
}

// notInTag is what River's tags cannot hold (they match \w[\w-]+\w).
var notInTag = regexp.MustCompile(`[^\w-]+`)

// eventTag is t as a River tag, or "" when nothing of it fits one.
func eventTag(t webhooks.EventType) string {
	tag := strings.Trim(notInTag.ReplaceAllString(string(t), "_"), "_-")
	if len(tag) < 3 || len(tag) > 255 {
		return ""
	}
	return tag
}
