package inbox

import (
	"crypto/sha256"
	"encoding/hex"
	"regexp"
	"strings"

	"github.com/riverqueue/river"
	"github.com/riverqueue/river/rivertype"

	"github.com/cakemail-go/webhooks"
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
}

// NewDeliveryArgs returns the job for a verified body and its parsed event.
func NewDeliveryArgs(body []byte, event *webhooks.Event) DeliveryArgs {
	sum := sha256.Sum256(body)
	args := DeliveryArgs{BodySHA256: hex.EncodeToString(sum[:]), Body: body}
	if event != nil {
		args.EventType = event.Type
	}
	return args
}

// Kind names the job in River's table.
func (DeliveryArgs) Kind() string { return "cakemail_delivery" }

// InsertOpts makes a delivery unique by its body for as long as River keeps
// the job, dead letters (discarded, cancelled) included, so an operator's
// dead letter is not silently replaced by a fresh copy.
func (DeliveryArgs) InsertOpts() river.InsertOpts {
	return river.InsertOpts{
		UniqueOpts: river.UniqueOpts{
			ByArgs: true,
			ByState: append(rivertype.UniqueOptsByStateDefault(),
				rivertype.JobStateDiscarded, rivertype.JobStateCancelled),
		},
	}
}

// tags label a delivery's job in River UI's list, which shows tags and not
// args: its event type, with the dots River's tags cannot hold made
// underscores (Email_Opened).
func (a DeliveryArgs) tags() []string {
	if t := eventTag(a.EventType); t != "" {
		return []string{t}
	}
	return nil
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
