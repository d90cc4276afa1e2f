package webhooks

import (
	"encoding/json"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
)

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
