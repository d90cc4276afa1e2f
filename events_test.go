package webhooks_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/cakemail-go/webhooks"
)

// referenceCopy is the copy of the reference documents the contract tests
// read: Cakemail's OpenAPI description, the seed documents and API-NOTES.md.
var referenceCopy = filepath.Join("testdata", "reference")

// apiDescription is the copy of Cakemail's OpenAPI description the
// contract tests read, here and in webhookstest.
var apiDescription = filepath.Join(referenceCopy, "cakemail-webhooks-openapi.json")

// The copy is the project's reference: where the reference sits beside the
// checkout, they must not have drifted apart.
func TestReferenceCopyIsTheReferences(t *testing.T) {
	shared := filepath.Join("..", "shared", "reference")
	if _, err := os.Stat(shared); errors.Is(err, fs.ErrNotExist) {
		t.Skipf("no ../shared/reference beside this checkout to compare %s with; the contract tests read the copy", referenceCopy)
	}
	files := 0
	err := filepath.WalkDir(shared, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, err := filepath.Rel(shared, path)
		if err != nil {
			return err
		}
		reference, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		copied, err := os.ReadFile(filepath.Join(referenceCopy, rel))
		assert.NoError(t, err, "%s is not copied into %s", rel, referenceCopy)
		assert.True(t, bytes.Equal(reference, copied), "%s differs from ../shared/reference: copy it again", rel)
		files++
		return nil
	})
	require.NoError(t, err)
	assert.Equal(t, 7, files, "the OpenAPI description, API-NOTES.md and five seeds")
}

func TestEventTypesCoverTheAPIAndTheGuide(t *testing.T) {
	raw, err := os.ReadFile(apiDescription)
	require.NoError(t, err)
	var spec struct {
		Components struct {
			Schemas struct {
				EventType struct {
					Enum []string `json:"enum"`
				} `json:"EventType"`
			} `json:"schemas"`
		} `json:"components"`
	}
	require.NoError(t, json.Unmarshal(raw, &spec))
	want := append(spec.Components.Schemas.EventType.Enum, "Campaign.Sent", "Contact.Unsubscribed")
	require.Len(t, want, 61)

	var got []string
	for _, e := range webhooks.EventTypes() {
		got = append(got, string(e))
		assert.True(t, e.Known(), e)
	}
	assert.Equal(t, want, got, "every API event, in the API's order, then the guide's two")
}

func TestEventTypesIsACopy(t *testing.T) {
	types := webhooks.EventTypes()
	types[0] = "Tampered"
	assert.Equal(t, webhooks.EventAccountCreated, webhooks.EventTypes()[0])
	assert.False(t, webhooks.EventType("Email.Teleported").Known())
}

func TestParseEventTypeCanonicalNamesInAnyCase(t *testing.T) {
	for _, e := range webhooks.EventTypes() {
		for _, spelling := range []string{string(e), strings.ToLower(string(e)), strings.ToUpper(string(e)), " " + string(e) + " "} {
			got, err := webhooks.ParseEventType(spelling)
			require.NoError(t, err, spelling)
			assert.Equal(t, e, got, spelling)
		}
	}
	got, err := webhooks.ParseEventType("email.reported_as_spam")
	require.NoError(t, err)
	assert.Equal(t, webhooks.EventEmailReportedAsSpam, got)
}

func TestParseEventTypeCLINames(t *testing.T) {
	// Every lower-case name in Cakemail's CLI documentation (seeds 000, 001, 004).
	cases := map[string]webhooks.EventType{
		"email.sent":           webhooks.EventEmailSent,
		"email.delivered":      webhooks.EventEmailDelivered,
		"email.opened":         webhooks.EventEmailOpened,
		"email.clicked":        webhooks.EventEmailClicked,
		"email.bounced":        webhooks.EventEmailBounced,
		"email.complained":     webhooks.EventEmailReportedAsSpam,
		"email.spam_complaint": webhooks.EventEmailReportedAsSpam,
		"email.unsubscribed":   webhooks.EventEmailUnsubscribed,
		"campaign.sent":        webhooks.EventCampaignSent,
		"campaign.scheduled":   webhooks.EventCampaignScheduled,
		"campaign.cancelled":   webhooks.EventCampaignCanceled,
		"campaign.completed":   webhooks.EventCampaignSent,
		"contact.subscribed":   webhooks.EventContactAdded,
		"contact.unsubscribed": webhooks.EventContactUnsubscribed,
	}
	for name, want := range cases {
		got, err := webhooks.ParseEventType(name)
		require.NoError(t, err, name)
		assert.Equal(t, want, got, name)
	}
}

func TestParseEventTypeSuggestsTheClosest(t *testing.T) {
	cases := map[string]string{
		"email.opend":      "Email.Opened",
		"Emial.Clicked":    "Email.Clicked",
		"user.loggedin2":   "User.LoggedIn",
		"campaign.cancel":  "Campaign.Canceled",
		"mfa.challengeisu": "MFA.ChallengeIssued",
	}
	for name, suggestion := range cases {
		_, err := webhooks.ParseEventType(name)
		require.ErrorIs(t, err, webhooks.ErrUnknownEventType, name)
		assert.Contains(t, err.Error(), `"`+name+`"`, "the error names the input")
		assert.Contains(t, err.Error(), `did you mean "`+suggestion+`"`, name)
	}
	_, err := webhooks.ParseEventType("  ")
	assert.ErrorIs(t, err, webhooks.ErrUnknownEventType)
}

func TestParseEventAPIShape(t *testing.T) {
	payload, err := os.ReadFile(filepath.Join("testdata", "api-shape.json"))
	require.NoError(t, err)
	event, err := webhooks.ParseEvent(payload)
	require.NoError(t, err)
	assert.Equal(t, webhooks.EventUserLoggedIn, event.Type)
	assert.Equal(t, 123, event.AccountID)
	assert.Equal(t, "203.0.113.7", event.IP)
	require.NotNil(t, event.User)
	assert.Equal(t, webhooks.EventUser{}, *event.User, "nulls stay zero")
	assert.Equal(t, time.Unix(1627069315, 0).UTC(), event.CreatedAt)

	var data struct {
		Email     string `json:"email"`
		GrantType string `json:"grant_type"`
	}
	require.NoError(t, event.DecodeData(&data))
	assert.Equal(t, "jane@example.com", data.Email)
	assert.Equal(t, "password", data.GrantType)
}

func TestParseEventGuideShape(t *testing.T) {
	payload, err := os.ReadFile(filepath.Join("testdata", "guide-shape.json"))
	require.NoError(t, err)
	event, err := webhooks.ParseEvent(payload)
	require.NoError(t, err)
	assert.Equal(t, webhooks.EventEmailOpened, event.Type, "the guide's spelling comes back canonical")
	assert.Equal(t, "email.opened", event.RawType, "the spelling as sent stays available")
	assert.Zero(t, event.AccountID)
	assert.Nil(t, event.User)
	assert.Equal(t, time.Date(2024, 3, 15, 10, 30, 0, 0, time.UTC), event.CreatedAt.UTC())
	var data map[string]any
	require.NoError(t, event.DecodeData(&data))
	assert.Equal(t, "user@example.com", data["email"])
}

func TestParseEventLenientFields(t *testing.T) {
	event, err := webhooks.ParseEvent([]byte(`{"event":"Contact.Added","account_id":"77","user":{"id":9,"email":"a@b.c","account_id":"77"},"created_on":"1700000000","data":{"contact_id":"c_1"}}`))
	require.NoError(t, err)
	assert.Equal(t, 77, event.AccountID, "ids sent as strings are read")
	assert.Equal(t, webhooks.EventUser{ID: "9", Email: "a@b.c", AccountID: 77}, *event.User)
	assert.Equal(t, int64(1700000000), event.CreatedAt.Unix())

	event, err = webhooks.ParseEvent([]byte(`{"event":"Brand.NewThing","data":null}`))
	require.NoError(t, err, "an unknown event type parses: new events must not break old receivers")
	assert.False(t, event.Type.Known())
	assert.Error(t, event.DecodeData(&map[string]any{}), "no data to decode")
}

func TestParseEventErrors(t *testing.T) {
	cases := map[string]string{
		"not JSON":             `hello`,
		"an array":             `[1,2]`,
		"a string":             `"Email.Opened"`,
		"no event":             `{"data":{}}`,
		"empty event":          `{"event":""}`,
		"event not a string":   `{"event":42}`,
		"bad created_on":       `{"event":"Email.Opened","created_on":"yesterday"}`,
		"bad timestamp":        `{"event":"Email.Opened","timestamp":"15/03/2024"}`,
		"bad account id":       `{"event":"Email.Opened","account_id":"abc"}`,
		"truncated":            `{"event":"Email.Opened","data":{`,
		"empty":                ``,
		"timestamp not string": `{"event":"Email.Opened","timestamp":12}`,
	}
	for name, payload := range cases {
		_, err := webhooks.ParseEvent([]byte(payload))
		assert.ErrorIs(t, err, webhooks.ErrInvalidEvent, name)
	}
	_, err := webhooks.ParseEvent([]byte(`[1]`))
	assert.Contains(t, err.Error(), "not an object")
	_, err = webhooks.ParseEvent([]byte(`{}`))
	assert.Contains(t, err.Error(), `no "event" field`)
}

func FuzzParseEvent(f *testing.F) {
	for _, name := range []string{"api-shape.json", "guide-shape.json", "unicode.json"} {
		payload, err := os.ReadFile(filepath.Join("testdata", name))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(payload)
	}
	f.Add([]byte(`{"event":"x","created_on":1e308,"user":{"id":1.5}}`))
	f.Add([]byte(`{"event":"x","created_on":-9223372036854775808}`))
	f.Fuzz(func(t *testing.T, payload []byte) {
		event, err := webhooks.ParseEvent(payload)
		if err == nil && event.Type == "" {
			t.Fatal("parsed an event without a type")
		}
	})
}

func TestParseEventCanonicalNames(t *testing.T) {
	cases := map[string]webhooks.EventType{
		"email.opened":         webhooks.EventEmailOpened,
		"EMAIL.OPENED":         webhooks.EventEmailOpened,
		"Email.Opened":         webhooks.EventEmailOpened,
		"email.spam_complaint": webhooks.EventEmailReportedAsSpam,
		"email.complained":     webhooks.EventEmailReportedAsSpam,
		"campaign.cancelled":   webhooks.EventCampaignCanceled,
		"user.logged_in":       webhooks.EventUserLoggedIn,
	}
	for sent, want := range cases {
		event, err := webhooks.ParseEvent([]byte(`{"event":"` + sent + `","data":{}}`))
		require.NoError(t, err, sent)
		assert.Equal(t, want, event.Type, sent)
		assert.Equal(t, sent, event.RawType, sent)
	}
}

func TestParseEventKeepsUnknownNamesAsSent(t *testing.T) {
	for _, sent := range []string{"Email.Teleported", "email.teleported", "Brand.New_Thing"} {
		event, err := webhooks.ParseEvent([]byte(`{"event":"` + sent + `"}`))
		require.NoError(t, err)
		assert.Equal(t, webhooks.EventType(sent), event.Type)
		assert.Equal(t, sent, event.RawType)
		assert.False(t, event.Type.Known())
	}
}

func TestGuideOnly(t *testing.T) {
	var guideOnly []webhooks.EventType
	for _, e := range webhooks.EventTypes() {
		if e.GuideOnly() {
			guideOnly = append(guideOnly, e)
		}
	}
	assert.ElementsMatch(t, []webhooks.EventType{webhooks.EventCampaignSent, webhooks.EventContactUnsubscribed}, guideOnly)
}

func TestParseEventRefusesTimesOutsideYears1To9999(t *testing.T) {
	refused := []string{
		`"created_on":"NaN"`, `"created_on":"nan"`, `"created_on":"Inf"`, `"created_on":"-Inf"`,
		`"created_on":"+Infinity"`, `"created_on":-1e300`, `"created_on":1e19`, `"created_on":1e308`,
		`"created_on":-9223372036854775808`, `"created_on":"9223372036854775807"`,
		`"created_on":253402300800`,   // 10000-01-01T00:00:00Z
		`"created_on":-62135596801`,   // 0000-12-31T23:59:59Z
		`"created_on":-62135596800.5`, // half a second before year 1
		`"timestamp":"0000-12-31T23:59:59Z"`,
		`"timestamp":"9999-12-31T23:59:59-00:01"`, // 10000-01-01T00:00:59Z
		`"timestamp":"0001-01-01T00:00:00+00:01"`, // 0000-12-31T23:59:00Z
	}
	for _, field := range refused {
		_, err := webhooks.ParseEvent([]byte(`{"event":"Email.Opened",` + field + `}`))
		assert.ErrorIs(t, err, webhooks.ErrInvalidEvent, field)
	}

	accepted := map[string]time.Time{
		`"created_on":253402300799`:                    time.Date(9999, 12, 31, 23, 59, 59, 0, time.UTC),
		`"created_on":"253402300799.5"`:                time.Date(9999, 12, 31, 23, 59, 59, 5e8, time.UTC),
		`"created_on":-62135596800`:                    time.Date(1, 1, 1, 0, 0, 0, 0, time.UTC),
		`"created_on":-1.5`:                            time.Date(1969, 12, 31, 23, 59, 58, 5e8, time.UTC),
		`"created_on":0`:                               time.Unix(0, 0).UTC(),
		`"timestamp":"9999-12-31T23:59:59.999999999Z"`: time.Date(9999, 12, 31, 23, 59, 59, 999999999, time.UTC),
		`"timestamp":"0001-01-01T00:00:00Z"`:           time.Date(1, 1, 1, 0, 0, 0, 0, time.UTC),
		`"timestamp":"0001-01-01T00:00:00-05:00"`:      time.Date(1, 1, 1, 5, 0, 0, 0, time.UTC),
	}
	for field, want := range accepted {
		event, err := webhooks.ParseEvent([]byte(`{"event":"Email.Opened",` + field + `}`))
		require.NoError(t, err, field)
		assert.True(t, want.Equal(event.CreatedAt), "%s: got %s", field, event.CreatedAt)
	}
}

func TestParseEventTrimsOnlyASCIISpaces(t *testing.T) {
	for _, sent := range []string{" Email.Opened", "Email.Opened\t", " \temail.opened \t"} {
		payload, err := json.Marshal(map[string]string{"event": sent})
		require.NoError(t, err)
		event, err := webhooks.ParseEvent(payload)
		require.NoError(t, err)
		assert.Equal(t, webhooks.EventEmailOpened, event.Type, "%q", sent)
		assert.Equal(t, sent, event.RawType)
	}
	for _, space := range []string{"\u00a0", "\u0085", "\u3000", "\u2003", "\u200b", "\u2028", "\ufeff", "\u1680"} {
		for _, sent := range []string{space + "Email.Opened", "Email.Opened" + space, space + "email.opened" + space} {
			payload, err := json.Marshal(map[string]string{"event": sent})
			require.NoError(t, err)
			event, err := webhooks.ParseEvent(payload)
			require.NoError(t, err)
			assert.Equal(t, webhooks.EventType(sent), event.Type, "%q stays as sent", sent)
			assert.Equal(t, sent, event.RawType)
			assert.False(t, event.Type.Known(), "%q", sent)
		}
		_, err := webhooks.ParseEventType(space + "Email.Opened")
		assert.ErrorIs(t, err, webhooks.ErrUnknownEventType, "%q", space)
	}

	// The router routes such a name as given, never to the known type.
	var got []string
	var router webhooks.Router
	router.On(webhooks.EventEmailOpened, func(_ context.Context, e *webhooks.Event) error {
		got = append(got, "opened:"+e.RawType)
		return nil
	})
	router.On("\u00a0Email.Opened", func(_ context.Context, e *webhooks.Event) error {
		got = append(got, "nbsp:"+e.RawType)
		return nil
	})
	router.OnUnhandled(func(_ context.Context, e *webhooks.Event) error {
		got = append(got, "unhandled:"+e.RawType)
		return nil
	})
	for _, sent := range []string{"\u00a0Email.Opened", "Email.Opened\u3000", " Email.Opened"} {
		payload, err := json.Marshal(map[string]string{"event": sent})
		require.NoError(t, err)
		event, err := webhooks.ParseEvent(payload)
		require.NoError(t, err)
		require.NoError(t, router.Dispatch(context.Background(), event))
	}
	assert.Equal(t, []string{"nbsp:\u00a0Email.Opened", "unhandled:Email.Opened\u3000", "opened: Email.Opened"}, got)
}
