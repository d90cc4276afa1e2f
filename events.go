package webhooks

import (
	"encoding/json"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
)

// EventType names what happened, as Cakemail spells it: Noun.Verb in PascalCase.
// Values the SDK does not know are kept as sent, so new events never break old receivers.
type EventType string

// The event types of the Cakemail API.
const (
	EventAccountCreated   EventType = "Account.Created"
	EventAccountUpdated   EventType = "Account.Updated"
	EventAccountConfirmed EventType = "Account.Confirmed"
	EventAccountDeleted   EventType = "Account.Deleted"

	EventContactAdded    EventType = "Contact.Added"
	EventContactUpdated  EventType = "Contact.Updated"
	EventContactRemoved  EventType = "Contact.Removed"
	EventContactTagged   EventType = "Contact.Tagged"
	EventContactUntagged EventType = "Contact.Untagged"

	EventContactsExportCreated EventType = "ContactsExport.Created"
	EventContactsExportDeleted EventType = "ContactsExport.Deleted"

	EventCampaignCanceled    EventType = "Campaign.Canceled"
	EventCampaignCreated     EventType = "Campaign.Created"
	EventCampaignUnscheduled EventType = "Campaign.Unscheduled"
	EventCampaignUpdated     EventType = "Campaign.Updated"
	EventCampaignResumed     EventType = "Campaign.Resumed"
	EventCampaignScheduled   EventType = "Campaign.Scheduled"
	EventCampaignSuspended   EventType = "Campaign.Suspended"

	EventCampaignLogExportCreated EventType = "CampaignLogExport.Created"

	EventEmailSent               EventType = "Email.Sent"
	EventEmailOpened             EventType = "Email.Opened"
	EventEmailClicked            EventType = "Email.Clicked"
	EventEmailBounced            EventType = "Email.Bounced"
	EventEmailReportedAsSpam     EventType = "Email.ReportedAsSpam"
	EventEmailUnsubscribed       EventType = "Email.Unsubscribed"
	EventEmailGlobalUnsubscribed EventType = "Email.GlobalUnsubscribed"
	EventEmailSubmitted          EventType = "Email.Submitted"
	EventEmailQueued             EventType = "Email.Queued"
	EventEmailRejected           EventType = "Email.Rejected"
	EventEmailProcessing         EventType = "Email.Processing"
	EventEmailDelivered          EventType = "Email.Delivered"
	EventEmailError              EventType = "Email.Error"

	EventUserCreated   EventType = "User.Created"
	EventUserDeleted   EventType = "User.Deleted"
	EventUserLoggedIn  EventType = "User.LoggedIn"
	EventUserUpdated   EventType = "User.Updated"
	EventUserConfirmed EventType = "User.Confirmed"

	EventListCreated EventType = "List.Created"
	EventListUpdated EventType = "List.Updated"
	EventListDeleted EventType = "List.Deleted"

	EventListLogsExportCreated EventType = "ListLogsExport.Created"

	EventMFARecoveryCodesViewed EventType = "MFA.RecoveryCodesViewed"
	EventMFAChallengeIssued     EventType = "MFA.ChallengeIssued"
	EventMFAChallengeCompleted  EventType = "MFA.ChallengeCompleted"
	EventMFAMethodAdded         EventType = "MFA.MethodAdded"
	EventMFAMethodActivated     EventType = "MFA.MethodActivated"
	EventMFAMethodDeleted       EventType = "MFA.MethodDeleted"

	EventSegmentCreated EventType = "Segment.Created"
	EventSegmentUpdated EventType = "Segment.Updated"
	EventSegmentDeleted EventType = "Segment.Deleted"

	EventSenderCreated               EventType = "Sender.Created"
	EventSenderUpdated               EventType = "Sender.Updated"
	EventSenderDeleted               EventType = "Sender.Deleted"
	EventSenderConfirmed             EventType = "Sender.Confirmed"
	EventSenderConfirmationEmailSent EventType = "Sender.ConfirmationEmailSent"

	EventSuppressedEmailAdded   EventType = "SuppressedEmail.Added"
	EventSuppressedEmailRemoved EventType = "SuppressedEmail.Removed"

	EventSuppressedEmailsExportCreated EventType = "SuppressedEmailsExport.Created"
	EventSuppressedEmailsExportDeleted EventType = "SuppressedEmailsExport.Deleted"
)

// Event types named in Cakemail's webhook guide but absent from the API description.
const (
	EventCampaignSent        EventType = "Campaign.Sent"
	EventContactUnsubscribed EventType = "Contact.Unsubscribed"
)

// knownEventTypes is in API order, then the guide's extras; EventTypes returns a copy.
var knownEventTypes = [...]EventType{
	EventAccountCreated,
	EventAccountUpdated,
	EventAccountConfirmed,
	EventAccountDeleted,
	EventContactAdded,
	EventContactUpdated,
	EventContactRemoved,
	EventContactTagged,
	EventContactUntagged,
	EventContactsExportCreated,
	EventContactsExportDeleted,
	EventCampaignCanceled,
	EventCampaignCreated,
	EventCampaignUnscheduled,
	EventCampaignUpdated,
	EventCampaignResumed,
	EventCampaignScheduled,
	EventCampaignSuspended,
	EventCampaignLogExportCreated,
	EventEmailSent,
	EventEmailOpened,
	EventEmailClicked,
	EventEmailBounced,
	EventEmailReportedAsSpam,
	EventEmailUnsubscribed,
	EventEmailGlobalUnsubscribed,
	EventEmailSubmitted,
	EventEmailQueued,
	EventEmailRejected,
	EventEmailProcessing,
	EventEmailDelivered,
	EventEmailError,
	EventUserCreated,
	EventUserDeleted,
	EventUserLoggedIn,
	EventUserUpdated,
	EventUserConfirmed,
	EventListCreated,
	EventListUpdated,
	EventListDeleted,
	EventListLogsExportCreated,
	EventMFARecoveryCodesViewed,
	EventMFAChallengeIssued,
	EventMFAChallengeCompleted,
	EventMFAMethodAdded,
	EventMFAMethodActivated,
	EventMFAMethodDeleted,
	EventSegmentCreated,
	EventSegmentUpdated,
	EventSegmentDeleted,
	EventSenderCreated,
	EventSenderUpdated,
	EventSenderDeleted,
	EventSenderConfirmed,
	EventSenderConfirmationEmailSent,
	EventSuppressedEmailAdded,
	EventSuppressedEmailRemoved,
	EventSuppressedEmailsExportCreated,
	EventSuppressedEmailsExportDeleted,
	EventCampaignSent,
	EventContactUnsubscribed,
}

// cliAliases maps the lower-case names of Cakemail's CLI documentation that have
// no same-named API event to the API event they mean. Keys are normalised.
var cliAliases = map[string]EventType{
	"email.complained":    EventEmailReportedAsSpam,
	"email.spamcomplaint": EventEmailReportedAsSpam,
	"campaign.cancelled":  EventCampaignCanceled,
	"campaign.completed":  EventCampaignSent,
	"contact.subscribed":  EventContactAdded,
}

// eventTypeIndex finds a known event type by its normalised name, aliases included.
var eventTypeIndex = func() map[string]EventType {
	m := make(map[string]EventType, len(knownEventTypes)+len(cliAliases))
	for _, t := range knownEventTypes {
		m[normalizeEventName(string(t))] = t
	}
	for k, t := range cliAliases {
		m[k] = t
	}
	return m
}()

// normalizeEventName folds case and drops '_' and '-' so that "Email.ReportedAsSpam",
// "email.reported_as_spam" and "EMAIL.REPORTEDASSPAM" compare equal. Only
// ASCII spaces and tabs around the name are trimmed: a name wrapped in other
// spaces (NBSP, U+0085, U+3000...) is not a spelling of a known name.
func normalizeEventName(s string) string {
	var b strings.Builder
	b.Grow(len(s))
	for _, r := range trimNameSpace(s) {
		switch {
		case r == '_' || r == '-':
		case 'A' <= r && r <= 'Z':
			b.WriteRune(r + ('a' - 'A'))
		default:
			b.WriteRune(r)
		}
	}
	return b.String()
}

// trimNameSpace trims the ASCII spaces and tabs around an event name, and no other space.
func trimNameSpace(s string) string { return strings.Trim(s, " \t") }

// EventTypes returns every known event type in a stable order.
func EventTypes() []EventType {
	out := make([]EventType, len(knownEventTypes))
	copy(out, knownEventTypes[:])
	return out
}

// Known reports whether t is one of the event types in EventTypes.
func (t EventType) Known() bool {
	for _, k := range knownEventTypes {
		if k == t {
			return true
		}
	}
	return false
}

// GuideOnly reports whether t is named only in Cakemail's webhook guide and not in
// the API description, whose server may refuse to create a webhook for it.
func (t EventType) GuideOnly() bool {
	return t == EventCampaignSent || t == EventContactUnsubscribed
}

// canonicalEventType returns the known type a name means in any documented
// spelling, or the name exactly as given when the SDK does not know it.
func canonicalEventType(name string) EventType {
	if t, ok := eventTypeIndex[normalizeEventName(name)]; ok {
		return t
	}
	return EventType(name)
}

// String returns the event type as Cakemail spells it.
func (t EventType) String() string { return string(t) }

// ParseEventType resolves a name to its event type: a canonical name in any letter
// case ("email.opened", "Email.ReportedAsSpam") or a name from Cakemail's CLI
// documentation ("email.spam_complaint", "campaign.cancelled", "contact.subscribed").
// An unknown name is an error wrapping ErrUnknownEventType that suggests the closest
// known name.
func ParseEventType(s string) (EventType, error) {
	key := normalizeEventName(s)
	if t, ok := eventTypeIndex[key]; ok {
		return t, nil
	}
	if trimNameSpace(s) == "" {
		return "", fmt.Errorf("%w: empty name", ErrUnknownEventType)
	}
	closest, _ := closestEventType(key)
	return "", fmt.Errorf("%w %q; did you mean %q?", ErrUnknownEventType, s, closest)
}

// closestEventType returns the known type whose normalised name, or one of whose
// aliases, is the fewest edits away from key, and that number of edits.
func closestEventType(key string) (EventType, int) {
	best, bestDist := knownEventTypes[0], -1
	for name, t := range eventTypeIndex {
		d := editDistance(key, name)
		// Ties go to the alphabetically first name so the suggestion is stable.
		if bestDist < 0 || d < bestDist || (d == bestDist && t < best) {
			best, bestDist = t, d
		}
	}
	return best, bestDist
}

// lookalikeEventType returns the known type that name, itself unknown, is most
// likely a misspelling of: one edit from a known spelling (a byte missing,
// doubled, wrong, or two swapped: "email.openned", "emial.opened"), or a known
// name without its past-tense ending ("Email.Open", "Contact.Tag"). One edit
// is at most a ninth of any name within reach of a known one; two would take
// plausible new events for typos ("Email.Resent", "ContactsImport.Created").
func lookalikeEventType(name string) (EventType, bool) {
	key := normalizeEventName(name)
	if _, known := eventTypeIndex[key]; known || key == "" {
		return "", false
	}
	if t, d := closestEventType(key); d == 1 {
		return t, true
	}
	for _, ending := range []string{"d", "ed", key[len(key)-1:] + "ed"} {
		if t, ok := eventTypeIndex[key+ending]; ok {
			return t, true
		}
	}
	return "", false
}

// editDistance is the number of single-byte insertions, deletions,
// substitutions and swaps of two adjacent bytes that turn a into b (the
// optimal string alignment distance), so "emial" is one edit from "email".
func editDistance(a, b string) int {
	// Three rows: the swap looks two rows back.
	back := make([]int, len(b)+1)
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
			if i > 1 && j > 1 && a[i-1] == b[j-2] && a[i-2] == b[j-1] {
				cur[j] = min(cur[j], back[j-2]+1)
			}
		}
		back, prev, cur = prev, cur, back
	}
	return prev[len(b)]
}

// Event is one delivery from Cakemail, in either documented payload shape.
type Event struct {
	// Type is the event in its canonical spelling, so it compares equal to the
	// Event* constants whichever documented spelling Cakemail sent
	// ("email.opened", "EMAIL.OPENED"). A name the SDK does not know is kept as sent.
	Type EventType
	// RawType is the event name exactly as it appeared in the payload.
	RawType string
	// AccountID is the account the event happened in (API shape only).
	AccountID int
	// IP is the address the action came from, when Cakemail knows it (API shape only).
	IP string
	// User is who acted, when Cakemail says (API shape only).
	User *EventUser
	// CreatedAt is when the event happened: created_on (Unix seconds) in the API
	// shape, timestamp (RFC 3339) in the guide's. Zero when the payload has neither.
	CreatedAt time.Time
	// Data holds the event-specific fields; read them with DecodeData.
	Data json.RawMessage
}

// EventUser is the user an event is attributed to. Cakemail sends nulls for
// unknown parts, which stay zero.
type EventUser struct {
	ID        string
	Email     string
	AccountID int
}

// wireEvent accepts both payload shapes at once.
type wireEvent struct {
	Event     *string         `json:"event"`
	AccountID flexInt         `json:"account_id"`
	IP        string          `json:"ip"`
	User      *wireEventUser  `json:"user"`
	CreatedOn json.RawMessage `json:"created_on"`
	Timestamp json.RawMessage `json:"timestamp"`
	Data      json.RawMessage `json:"data"`
}

type wireEventUser struct {
	ID        flexString `json:"id"`
	Email     string     `json:"email"`
	AccountID flexInt    `json:"account_id"`
}

// ParseEvent reads a delivery body in the API's shape (event, account_id, ip, user,
// created_on in Unix seconds, data) or the guide's (event, timestamp in RFC 3339,
// data). Known event names come back canonical in Type, and as sent in RawType.
// It does not check the signature: use ConstructEvent for bodies off the wire.
func ParseEvent(payload []byte) (*Event, error) {
	var w wireEvent
	if err := json.Unmarshal(payload, &w); err != nil {
		return nil, fmt.Errorf("%w: %s", ErrInvalidEvent, jsonProblem(err))
	}
	if w.Event == nil || *w.Event == "" {
		return nil, fmt.Errorf("%w: no \"event\" field", ErrInvalidEvent)
	}
	e := &Event{
		Type:      canonicalEventType(*w.Event),
		RawType:   *w.Event,
		AccountID: int(w.AccountID),
		IP:        w.IP,
		Data:      w.Data,
	}
	if w.User != nil {
		e.User = &EventUser{ID: string(w.User.ID), Email: w.User.Email, AccountID: int(w.User.AccountID)}
	}
	created, err := eventTime(w.CreatedOn, w.Timestamp)
	if err != nil {
		return nil, err
	}
	e.CreatedAt = created
	return e, nil
}

// The Unix seconds of the first and the last instant of years 0001 to 9999,
// the times an event can have.
const (
	minEventUnix = -62135596800 // 0001-01-01T00:00:00Z
	maxEventUnix = 253402300799 // 9999-12-31T23:59:59Z
)

// eventTime reads created_on (Unix seconds, number or numeric string) or, failing
// that, timestamp (RFC 3339). Both absent or null is the zero time. A time
// outside years 0001 to 9999 (UTC), or not finite, is refused.
func eventTime(createdOn, timestamp json.RawMessage) (time.Time, error) {
	if !isNullJSON(createdOn) {
		return unixTime(createdOn, "created_on")
	}
	if !isNullJSON(timestamp) {
		return rfc3339Time(timestamp, "timestamp")
	}
	return time.Time{}, nil
}

// unixTime reads the field's Unix seconds, sent as a number or a numeric string,
// in UTC; errors wrap ErrInvalidEvent and never quote the value.
func unixTime(raw json.RawMessage, field string) (time.Time, error) {
	s := strings.Trim(string(raw), `"`)
	secs, err := strconv.ParseFloat(s, 64)
	if err != nil || math.IsNaN(secs) || math.IsInf(secs, 0) {
		return time.Time{}, fmt.Errorf("%w: %s is not Unix seconds", ErrInvalidEvent, field)
	}
	if secs < minEventUnix || secs >= maxEventUnix+1 {
		return time.Time{}, fmt.Errorf("%w: %s is outside the years 0001 to 9999", ErrInvalidEvent, field)
	}
	whole := math.Floor(secs)
	return time.Unix(int64(whole), int64((secs-whole)*1e9)).UTC(), nil
}

// rfc3339Time reads the field's RFC 3339 string, keeping its offset; errors wrap
// ErrInvalidEvent and never quote the value.
func rfc3339Time(raw json.RawMessage, field string) (time.Time, error) {
	var s string
	if err := json.Unmarshal(raw, &s); err != nil {
		return time.Time{}, fmt.Errorf("%w: %s is not an RFC 3339 string", ErrInvalidEvent, field)
	}
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return time.Time{}, fmt.Errorf("%w: %s is not RFC 3339", ErrInvalidEvent, field)
	}
	// Four digits hold year 0000, and an offset can carry 9999 past its end.
	if y := t.UTC().Year(); y < 1 || y > 9999 {
		return time.Time{}, fmt.Errorf("%w: %s is outside the years 0001 to 9999", ErrInvalidEvent, field)
	}
	return t, nil
}

func isNullJSON(raw json.RawMessage) bool {
	return len(raw) == 0 || string(raw) == "null"
}

// DecodeData unmarshals the event's data into v, a pointer to a struct or map.
func (e *Event) DecodeData(v any) error {
	if isNullJSON(e.Data) {
		return fmt.Errorf("webhooks: event %s has no data", e.Type)
	}
	if err := json.Unmarshal(e.Data, v); err != nil {
		return fmt.Errorf("webhooks: decoding %s data: %w", e.Type, err)
	}
	return nil
}

// flexInt reads an id sent as a number, a numeric string or null.
type flexInt int

func (n *flexInt) UnmarshalJSON(b []byte) error {
	if isNullJSON(b) {
		return nil
	}
	v, err := strconv.Atoi(strings.Trim(string(b), `"`))
	if err != nil {
		return idError("an id is " + jsonKind(b) + ", not an integer")
	}
	*n = flexInt(v)
	return nil
}

// flexString reads an id sent as a string, a number or null.
type flexString string

func (s *flexString) UnmarshalJSON(b []byte) error {
	if isNullJSON(b) {
		return nil
	}
	if b[0] == '"' {
		var v string
		if err := json.Unmarshal(b, &v); err != nil {
			return err
		}
		*s = flexString(v)
		return nil
	}
	var n json.Number
	if err := json.Unmarshal(b, &n); err != nil {
		return idError("an id is " + jsonKind(b) + ", not a string or a number")
	}
	*s = flexString(n)
	return nil
}
