package webhooks

import (
	"bytes"
	"encoding/json"
	"fmt"
	"time"
)

// EmailData is the data of the Email.* events (EventEmailSent, EventEmailOpened,
// EventEmailClicked, EventEmailBounced and the other EventEmail types), read
// from every shape Cakemail's documents show; decode it with
// HandleData[EmailData] or Event.DecodeData.
//
// Ids are text: a JSON string as sent, a JSON number as its decimal digits
// exactly as sent ("12345678901234567890", never rounded through float64). A
// number with a fraction or an exponent (12.0, 1e3) is refused, because only a
// floating-point value is written that way and it may have rounded the id
// already; so are an object, an array and a boolean. A refused value is an error
// wrapping ErrInvalidEvent, so a HandleData handler is not called and package
// inbox makes the delivery a dead letter at once. Null is the same as absent,
// for every field.
type EmailData struct {
	EmailID    string // email_id
	MessageID  string // message_id
	ContactID  string // contact_id
	CampaignID string // campaign_id
	ListID     string // list_id

	// Email is the recipient's address: the first of email, email_address and
	// recipient that is not empty (the others stay in Extra).
	Email string
	// IP is the address an open or a click came from: ip_address, or ip when
	// ip_address is absent or empty (a second one stays in Extra).
	IP        string
	UserAgent string // user_agent

	// OpenedAt is opened_at: RFC 3339 as the API guide shows it, or Unix
	// seconds as the API writes its other times; zero when absent.
	OpenedAt time.Time

	// Extra holds, as sent, every member of data that no field above was read
	// from: a click's link, a bounce's reason, whatever the documents do not
	// show, and an address that lost to another (recipient beside email).
	// It is nil when there are none.
	Extra map[string]json.RawMessage
}

// emailIDFields, emailAddressFields and emailIPFields are the members EmailData
// reads, in order of precedence where several fill one field.
var (
	emailIDFields      = [...]string{"email_id", "message_id", "contact_id", "campaign_id", "list_id"}
	emailAddressFields = [...]string{"email", "email_address", "recipient"}
	emailIPFields      = [...]string{"ip_address", "ip"}
)

func (d *EmailData) ids() [len(emailIDFields)]*string {
	return [...]*string{&d.EmailID, &d.MessageID, &d.ContactID, &d.CampaignID, &d.ListID}
}

// UnmarshalJSON reads an Email.* event's data object; see EmailData for the rules.
func (d *EmailData) UnmarshalJSON(b []byte) error {
	if isNullJSON(bytes.TrimSpace(b)) {
		return nil
	}
	var members map[string]json.RawMessage
	if err := json.Unmarshal(b, &members); err != nil {
		if kind := jsonKind(b); kind != "an object" {
			return fmt.Errorf("%w: data is %s, not an object", ErrInvalidEvent, kind)
		}
		return fmt.Errorf("%w: data is %s", ErrInvalidEvent, jsonProblem(err))
	}
	var out EmailData
	for i, key := range emailIDFields {
		raw, ok := members[key]
		if !ok {
			continue
		}
		delete(members, key)
		id, err := emailID(raw, key)
		if err != nil {
			return err
		}
		*out.ids()[i] = id
	}
	var err error
	if out.Email, err = firstString(members, emailAddressFields[:]); err != nil {
		return err
	}
	if out.IP, err = firstString(members, emailIPFields[:]); err != nil {
		return err
	}
	if out.UserAgent, err = firstString(members, []string{"user_agent"}); err != nil {
		return err
	}
	if raw, ok := members["opened_at"]; ok {
		delete(members, "opened_at")
		if out.OpenedAt, err = dataTime(raw, "data.opened_at"); err != nil {
			return err
		}
	}
	if len(members) > 0 {
		out.Extra = members
	}
	*d = out
	return nil
}

// MarshalJSON writes d as a data object that UnmarshalJSON reads back into d:
// Extra's members, then each non-empty field under its first name (email,
// ip_address), ids as strings and OpenedAt in RFC 3339.
func (d EmailData) MarshalJSON() ([]byte, error) {
	m := make(map[string]any, len(d.Extra)+len(emailIDFields)+4)
	for k, v := range d.Extra {
		m[k] = v
	}
	for i, key := range emailIDFields {
		if id := *d.ids()[i]; id != "" {
			m[key] = id
		}
	}
	for key, v := range map[string]string{emailAddressFields[0]: d.Email, emailIPFields[0]: d.IP, "user_agent": d.UserAgent} {
		if v != "" {
			m[key] = v
		}
	}
	if !d.OpenedAt.IsZero() {
		m["opened_at"] = d.OpenedAt
	}
	return json.Marshal(m)
}

// emailID reads an id: a string as sent, or an integer's digits as sent.
// Errors name the field and the kind of value, never the value.
func emailID(raw json.RawMessage, field string) (string, error) {
	switch {
	case isNullJSON(raw):
		return "", nil
	case raw[0] == '"':
		var s string
		if err := json.Unmarshal(raw, &s); err != nil {
			return "", fmt.Errorf("%w: data.%s is not a valid JSON string", ErrInvalidEvent, field)
		}
		return s, nil
	case raw[0] == '-' || '0' <= raw[0] && raw[0] <= '9':
		if bytes.ContainsAny(raw, ".eE") {
			return "", fmt.Errorf("%w: data.%s is a number with a fraction or an exponent, not an integer id", ErrInvalidEvent, field)
		}
		return string(raw), nil
	}
	return "", fmt.Errorf("%w: data.%s is %s, not a string or an integer", ErrInvalidEvent, field, jsonKind(raw))
}

// firstString returns the first of keys whose member is a non-empty string, and
// removes it and the empty and null ones from members; the others stay. A
// member that is neither a string nor null is an error.
func firstString(members map[string]json.RawMessage, keys []string) (string, error) {
	var found string
	for _, key := range keys {
		raw, ok := members[key]
		if !ok {
			continue
		}
		var s string
		if err := json.Unmarshal(raw, &s); err != nil {
			return "", fmt.Errorf("%w: data.%s is %s, not a string", ErrInvalidEvent, key, jsonKind(raw))
		}
		switch {
		case s == "":
			delete(members, key)
		case found == "":
			found = s
			delete(members, key)
		}
	}
	return found, nil
}

// dataTime reads a time of data: RFC 3339 from a string, Unix seconds from a
// number, zero from null.
func dataTime(raw json.RawMessage, field string) (time.Time, error) {
	switch {
	case isNullJSON(raw):
		return time.Time{}, nil
	case raw[0] == '"':
		return rfc3339Time(raw, field)
	case raw[0] == '-' || '0' <= raw[0] && raw[0] <= '9':
		return unixTime(raw, field)
	}
	return time.Time{}, fmt.Errorf("%w: %s is %s, not RFC 3339 or Unix seconds", ErrInvalidEvent, field, jsonKind(raw))
}
