package webhooks_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"math/big"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/cakemail-go/webhooks"
)

// The two payloads of the CLI's webhooks integration guide (seeds 001 and 004).
const (
	cliGuideEmailSent = `{
  "event": "email.sent",
  "timestamp": "2024-03-15T10:30:00Z",
  "data": {
    "campaign_id": 790,
    "contact_id": 501,
    "email": "user@example.com",
    "message_id": "msg_abc123"
  }
}`
	cliGuideEmailOpened = `{
  "event": "email.opened",
  "timestamp": "2024-03-15T11:45:00Z",
  "data": {
    "campaign_id": 790,
    "contact_id": 501,
    "email": "user@example.com",
    "user_agent": "Mozilla/5.0...",
    "ip_address": "192.168.1.1"
  }
}`
)

var (
	cliGuideEmailSentData   = webhooks.EmailData{CampaignID: "790", ContactID: "501", Email: "user@example.com", MessageID: "msg_abc123"}
	cliGuideEmailOpenedData = webhooks.EmailData{CampaignID: "790", ContactID: "501", Email: "user@example.com", UserAgent: "Mozilla/5.0...", IP: "192.168.1.1"}
)

// seedEmailPayloads is every delivery of an Email.* event in the seed
// documents (../shared/reference/seeds), as printed there, with what
// EmailData reads from it. TestSeedEmailPayloadsAreAllHere holds the list to
// the documents.
var seedEmailPayloads = []struct {
	seed, name string
	payload    string
	want       webhooks.EmailData
}{
	{
		seed: "000_af797413d5678bb4.txt", name: "CLI webhook commands, Webhook Payload",
		payload: `{
  "event": "email.opened",
  "timestamp": "2024-03-15T10:30:00Z",
  "data": {
    "email_id": "email_abc123",
    "recipient": "user@example.com",
    "campaign_id": 790,
    "list_id": 123
  }
}`,
		want: webhooks.EmailData{EmailID: "email_abc123", Email: "user@example.com", CampaignID: "790", ListID: "123"},
	},
	{
		seed: "000_af797413d5678bb4.txt", name: "CLI webhook commands, Webhook Requests Failing (curl test)",
		payload: `{"event":"email.sent","data":{}}`,
		want:    webhooks.EmailData{},
	},
	{seed: "001_ebd28a6911f87826.txt", name: "CLI webhooks integration, Email Sent Event", payload: cliGuideEmailSent, want: cliGuideEmailSentData},
	{seed: "001_ebd28a6911f87826.txt", name: "CLI webhooks integration, Email Opened Event", payload: cliGuideEmailOpened, want: cliGuideEmailOpenedData},
	{
		seed: "002_4149645c7afae2fc.txt", name: "API guide, Webhook payload structure",
		payload: `{
    "event": "Email.Opened",
    "timestamp": "2026-04-10T14:32:00Z",
    "data": {
      "email_id": "e_abc123",
      "contact_id": "c_def456",
      "campaign_id": "cmp_ghi789",
      "list_id": "lst_jkl012",
      "email_address": "recipient@example.com",
      "opened_at": "2026-04-10T14:32:00Z"
    }
  }`,
		want: webhooks.EmailData{
			EmailID: "e_abc123", ContactID: "c_def456", CampaignID: "cmp_ghi789", ListID: "lst_jkl012",
			Email: "recipient@example.com", OpenedAt: time.Date(2026, 4, 10, 14, 32, 0, 0, time.UTC),
		},
	},
	// Seed 004 is seed 001 in Markdown: the same two payloads, indented.
	{seed: "004_f37e01e37e080cc8.txt", name: "CLI webhooks integration (markdown), Email Sent Event", payload: cliGuideEmailSent, want: cliGuideEmailSentData},
	{seed: "004_f37e01e37e080cc8.txt", name: "CLI webhooks integration (markdown), Email Opened Event", payload: cliGuideEmailOpened, want: cliGuideEmailOpenedData},
}

// assertEmailData compares EmailData values, OpenedAt by instant.
func assertEmailData(t *testing.T, want, got webhooks.EmailData, msg string) {
	t.Helper()
	assert.True(t, want.OpenedAt.Equal(got.OpenedAt), "%s: OpenedAt %v, want %v", msg, got.OpenedAt, want.OpenedAt)
	want.OpenedAt, got.OpenedAt = time.Time{}, time.Time{}
	assert.Equal(t, want, got, msg)
}

func TestEmailDataReadsEverySeedPayload(t *testing.T) {
	router := webhooks.NewRouter()
	var handled []webhooks.EmailData
	for _, e := range []webhooks.EventType{webhooks.EventEmailSent, webhooks.EventEmailOpened} {
		router.On(e, webhooks.HandleData(func(_ context.Context, _ *webhooks.Event, d webhooks.EmailData) error {
			handled = append(handled, d)
			return nil
		}))
	}
	v := newTestVerifier(t)
	for i, c := range seedEmailPayloads {
		name := c.seed + ": " + c.name
		event, err := webhooks.ParseEvent([]byte(c.payload))
		require.NoError(t, err, name)
		require.True(t, strings.HasPrefix(string(event.Type), "Email."), name)

		var d webhooks.EmailData
		require.NoError(t, event.DecodeData(&d), name)
		assertEmailData(t, c.want, d, name+" (DecodeData)")
		assert.Nil(t, d.Extra, "%s: every documented field has a name", name)

		require.Equal(t, http.StatusOK, deliver(t, v, router, []byte(c.payload)).Code, name)
		require.Len(t, handled, i+1, name)
		assertEmailData(t, c.want, handled[i], name+" (HandleData)")
	}
}

// TestSeedEmailPayloadsAreAllHere finds every Email.* delivery printed in the
// seed documents and holds seedEmailPayloads to exactly those.
func TestSeedEmailPayloadsAreAllHere(t *testing.T) {
	dir := filepath.Join(referenceCopy, "seeds")
	files, err := os.ReadDir(dir)
	require.NoError(t, err)
	type found struct{ seed, payload string }
	var inSeeds, inTable []found
	compact := func(s string) string {
		var b bytes.Buffer
		require.NoError(t, json.Compact(&b, []byte(s)))
		return b.String()
	}
	for _, f := range files {
		text, err := os.ReadFile(filepath.Join(dir, f.Name()))
		require.NoError(t, err)
		for i := bytes.IndexByte(text, '{'); i >= 0; {
			var raw json.RawMessage
			end := i + 1
			if err := json.NewDecoder(bytes.NewReader(text[i:])).Decode(&raw); err == nil {
				if e, err := webhooks.ParseEvent(raw); err == nil && strings.HasPrefix(string(e.Type), "Email.") {
					inSeeds = append(inSeeds, found{f.Name(), compact(string(raw))})
					end = i + len(raw)
				}
			}
			next := bytes.IndexByte(text[end:], '{')
			if next < 0 {
				break
			}
			i = end + next
		}
	}
	for _, c := range seedEmailPayloads {
		inTable = append(inTable, found{c.seed, compact(c.payload)})
	}
	assert.ElementsMatch(t, inSeeds, inTable, "one case for each Email.* payload of the seed documents")
}

func TestEmailDataIDsBeyondFloat64(t *testing.T) {
	// 2^53+1 is the first integer float64 cannot hold; the others are past
	// int64 and uint64.
	ids := []string{"9007199254740993", "12345678901234567890", "18446744073709551617", "123456789012345678901234567890123456789", "-9007199254740993", "0"}
	for _, id := range ids {
		payload := []byte(`{"event":"Email.Clicked","created_on":1767268800,"data":{"email_id":` + id +
			`,"message_id":` + id + `,"contact_id":` + id + `,"campaign_id":` + id + `,"list_id":` + id + `}}`)
		want := webhooks.EmailData{EmailID: id, MessageID: id, ContactID: id, CampaignID: id, ListID: id}

		event, err := webhooks.ParseEvent(payload)
		require.NoError(t, err)
		var d webhooks.EmailData
		require.NoError(t, event.DecodeData(&d))
		assert.Equal(t, want, d, "DecodeData keeps %s exact", id)

		var handled []webhooks.EmailData
		router := webhooks.NewRouter()
		router.On(webhooks.EventEmailClicked, webhooks.HandleData(func(_ context.Context, _ *webhooks.Event, d webhooks.EmailData) error {
			handled = append(handled, d)
			return nil
		}))
		require.NoError(t, router.Dispatch(context.Background(), event))
		assert.Equal(t, []webhooks.EmailData{want}, handled, "HandleData keeps %s exact", id)
	}
}

func TestEmailDataRefusesWhatCannotBeAnID(t *testing.T) {
	values := map[string]string{
		"an object":              `{"id":501}`,
		"an empty object":        `{}`,
		"an array":               `[501]`,
		"true":                   `true`,
		"false":                  `false`,
		"a fraction":             `12.5`,
		"an integer as a float":  `12.0`,
		"an exponent":            `1e3`,
		"an upper-case exponent": `5E+2`,
		"a float past 2^53":      `1.2345678901234567e19`,
	}
	for _, field := range []string{"email_id", "message_id", "contact_id", "campaign_id", "list_id"} {
		for kind, value := range values {
			name := field + " is " + kind
			payload := []byte(`{"event":"Email.Bounced","data":{"email":"a@example.com","` + field + `":` + value + `}}`)
			event, err := webhooks.ParseEvent(payload)
			require.NoError(t, err, name)

			var d webhooks.EmailData
			err = event.DecodeData(&d)
			require.ErrorIs(t, err, webhooks.ErrInvalidEvent, name)
			assert.Contains(t, err.Error(), "data."+field, name)
			assert.NotContains(t, err.Error(), value, "%s: the error names the kind, never the value", name)
			assert.Equal(t, webhooks.EmailData{}, d, "%s: nothing is half decoded", name)

			called := false
			router := webhooks.NewRouter()
			router.On(webhooks.EventEmailBounced, webhooks.HandleData(func(context.Context, *webhooks.Event, webhooks.EmailData) error {
				called = true
				return nil
			}))
			err = router.Dispatch(context.Background(), event)
			require.ErrorIs(t, err, webhooks.ErrInvalidEvent, "%s: the inbox makes it a dead letter at once", name)
			assert.Equal(t, 1, strings.Count(err.Error(), webhooks.ErrInvalidEvent.Error()), "%s: said once: %v", name, err)
			assert.False(t, called, name)
		}
	}
}

func TestEmailDataAddressesAndPrecedence(t *testing.T) {
	raw := func(s string) json.RawMessage { return json.RawMessage(s) }
	cases := []struct {
		name, data string
		want       webhooks.EmailData
	}{
		{"email alone", `{"email":"a@x"}`, webhooks.EmailData{Email: "a@x"}},
		{"email_address alone", `{"email_address":"b@x"}`, webhooks.EmailData{Email: "b@x"}},
		{"recipient alone", `{"recipient":"c@x"}`, webhooks.EmailData{Email: "c@x"}},
		{"email before email_address and recipient", `{"recipient":"c@x","email_address":"b@x","email":"a@x"}`,
			webhooks.EmailData{Email: "a@x", Extra: map[string]json.RawMessage{"email_address": raw(`"b@x"`), "recipient": raw(`"c@x"`)}}},
		{"email_address before recipient", `{"recipient":"c@x","email_address":"b@x"}`,
			webhooks.EmailData{Email: "b@x", Extra: map[string]json.RawMessage{"recipient": raw(`"c@x"`)}}},
		{"an empty email gives way", `{"email":"","recipient":"c@x"}`, webhooks.EmailData{Email: "c@x"}},
		{"a null email is absent", `{"email":null,"recipient":"c@x"}`, webhooks.EmailData{Email: "c@x"}},
		{"ip_address before ip", `{"ip":"10.0.0.2","ip_address":"10.0.0.1"}`,
			webhooks.EmailData{IP: "10.0.0.1", Extra: map[string]json.RawMessage{"ip": raw(`"10.0.0.2"`)}}},
		{"ip alone", `{"ip":"2001:db8::1"}`, webhooks.EmailData{IP: "2001:db8::1"}},
		{"null ids are absent", `{"contact_id":null,"list_id":null}`, webhooks.EmailData{}},
		{"an empty string id", `{"contact_id":""}`, webhooks.EmailData{}},
		{"a string id as sent", `{"contact_id":" 007 ","list_id":"\u00e9"}`, webhooks.EmailData{ContactID: " 007 ", ListID: "é"}},
		{"undocumented fields stay as sent", `{"email":"a@x","link":"https://x.test/?a=1&b=2","bounce":{"type":"hard","code": 550}}`,
			webhooks.EmailData{Email: "a@x", Extra: map[string]json.RawMessage{
				"link": raw(`"https://x.test/?a=1&b=2"`), "bounce": raw(`{"type":"hard","code": 550}`),
			}}},
		{"null data", `null`, webhooks.EmailData{}},
	}
	for _, c := range cases {
		var d webhooks.EmailData
		require.NoError(t, json.Unmarshal([]byte(c.data), &d), c.name)
		assertEmailData(t, c.want, d, c.name)
	}

	for _, data := range []string{`{"email":5}`, `{"recipient":{}}`, `{"ip_address":["10.0.0.1"]}`, `{"ip":true}`, `{"user_agent":1}`, `[]`, `"data"`, `7`} {
		var d webhooks.EmailData
		err := json.Unmarshal([]byte(data), &d)
		assert.ErrorIs(t, err, webhooks.ErrInvalidEvent, data)
	}
}

func TestEmailDataOpenedAt(t *testing.T) {
	paris := time.FixedZone("", 2*3600)
	cases := map[string]time.Time{
		`"2026-04-10T14:32:00Z"`:           time.Date(2026, 4, 10, 14, 32, 0, 0, time.UTC),
		`"2026-04-10T16:32:00.25+02:00"`:   time.Date(2026, 4, 10, 16, 32, 0, 250_000_000, paris),
		`1775831520`:                       time.Date(2026, 4, 10, 14, 32, 0, 0, time.UTC),
		`1775831520.5`:                     time.Date(2026, 4, 10, 14, 32, 0, 500_000_000, time.UTC),
		`null`:                             {},
		`"0001-01-01T00:00:00Z"`:           time.Date(1, 1, 1, 0, 0, 0, 0, time.UTC),
		`"9999-12-31T23:59:59.999999999Z"`: time.Date(9999, 12, 31, 23, 59, 59, 999_999_999, time.UTC),
	}
	for value, want := range cases {
		var d webhooks.EmailData
		require.NoError(t, json.Unmarshal([]byte(`{"opened_at":`+value+`}`), &d), value)
		assert.True(t, want.Equal(d.OpenedAt), "%s: %v", value, d.OpenedAt)
		if value == `"2026-04-10T16:32:00.25+02:00"` {
			_, offset := d.OpenedAt.Zone()
			assert.Equal(t, 2*3600, offset, "the offset sent is kept")
		}
		assert.Nil(t, d.Extra, value)
	}
	for _, value := range []string{`"2026-04-10"`, `"yesterday"`, `"1775831520"`, `1e300`, `"0001-01-01T00:30:00+01:00"`, `true`, `{}`} {
		var d webhooks.EmailData
		err := json.Unmarshal([]byte(`{"opened_at":`+value+`}`), &d)
		require.ErrorIs(t, err, webhooks.ErrInvalidEvent, value)
		assert.Contains(t, err.Error(), "data.opened_at", value)
	}
}

func TestEmailDataJSONRoundTrip(t *testing.T) {
	for _, c := range seedEmailPayloads {
		event, err := webhooks.ParseEvent([]byte(c.payload))
		require.NoError(t, err)
		var d webhooks.EmailData
		require.NoError(t, event.DecodeData(&d))
		assertEmailDataRoundTrips(t, d, c.seed+": "+c.name)
	}
	d := webhooks.EmailData{
		ContactID: "12345678901234567890", Email: "a@x", IP: "10.0.0.1",
		OpenedAt: time.Date(2026, 4, 10, 16, 32, 0, 1, time.FixedZone("", 2*3600)),
		Extra:    map[string]json.RawMessage{"recipient": json.RawMessage(`"b@x"`), "ip": json.RawMessage(`"10.0.0.2"`), "link": json.RawMessage(`"https://x.test/"`)},
	}
	assertEmailDataRoundTrips(t, d, "every field")
	out, err := json.Marshal(d)
	require.NoError(t, err)
	assert.JSONEq(t, `{"contact_id":"12345678901234567890","email":"a@x","ip_address":"10.0.0.1","ip":"10.0.0.2",`+
		`"recipient":"b@x","link":"https://x.test/","opened_at":"2026-04-10T16:32:00.000000001+02:00"}`, string(out))
	out, err = json.Marshal(webhooks.EmailData{})
	require.NoError(t, err)
	assert.Equal(t, `{}`, string(out))
}

// assertEmailDataRoundTrips checks that d, marshalled and read back, is d.
func assertEmailDataRoundTrips(t *testing.T, d webhooks.EmailData, msg string) {
	t.Helper()
	out, err := json.Marshal(d)
	require.NoError(t, err, msg)
	var back webhooks.EmailData
	require.NoError(t, json.Unmarshal(out, &back), msg)
	assertEmailData(t, d, back, msg)
}

// FuzzEmailDataIDs holds an id's decoding to a reference reading: a string as
// sent, an integer's digits as sent, anything else refused without being quoted.
func FuzzEmailDataIDs(f *testing.F) {
	for _, id := range []string{`790`, `"c_def456"`, `12345678901234567890`, `-0`, `12.0`, `1e3`, `1E+2`, `{}`, `[1]`, `true`, `null`, `"\u00e9"`, `""`} {
		f.Add(id)
	}
	f.Fuzz(func(t *testing.T, id string) {
		payload := []byte(`{"contact_id":` + id + `}`)
		if !json.Valid(payload) {
			return
		}
		dec := json.NewDecoder(bytes.NewReader(payload))
		dec.UseNumber()
		var ref map[string]any
		if err := dec.Decode(&ref); err != nil {
			t.Fatal(err)
		}
		var d webhooks.EmailData
		err := json.Unmarshal(payload, &d)
		switch v := ref["contact_id"].(type) {
		case nil:
			require.NoError(t, err)
			assert.Equal(t, "", d.ContactID)
		case string:
			require.NoError(t, err)
			assert.Equal(t, v, d.ContactID)
		case json.Number:
			if strings.ContainsAny(v.String(), ".eE") {
				require.ErrorIs(t, err, webhooks.ErrInvalidEvent)
				assert.NotContains(t, err.Error(), v.String())
				return
			}
			require.NoError(t, err)
			assert.Equal(t, v.String(), d.ContactID, "the digits as sent")
			_, ok := new(big.Int).SetString(d.ContactID, 10)
			assert.True(t, ok, "an integer")
		default:
			require.ErrorIs(t, err, webhooks.ErrInvalidEvent, "%T", v)
			assert.NotContains(t, err.Error(), strings.TrimSpace(id))
		}
		assert.Nil(t, d.Extra, "an id never lands in Extra")
	})
}

// FuzzEmailDataRoundTrip holds MarshalJSON to writing what UnmarshalJSON reads back.
func FuzzEmailDataRoundTrip(f *testing.F) {
	for _, c := range seedEmailPayloads {
		event, err := webhooks.ParseEvent([]byte(c.payload))
		if err != nil {
			f.Fatal(err)
		}
		f.Add([]byte(event.Data))
	}
	f.Add([]byte(`{"email":"","recipient":"c@x","ip":"1","ip_address":null,"opened_at":1775831520.5,"x":[1, {"<":"&"}]}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		var d webhooks.EmailData
		if err := json.Unmarshal(data, &d); err != nil {
			if !errors.Is(err, webhooks.ErrInvalidEvent) {
				var syntax *json.SyntaxError
				require.ErrorAs(t, err, &syntax, "only a body that is not JSON fails otherwise")
			}
			return
		}
		out, err := json.Marshal(d)
		require.NoError(t, err)
		var back webhooks.EmailData
		require.NoError(t, json.Unmarshal(out, &back))
		assert.True(t, d.OpenedAt.Equal(back.OpenedAt))
		d.OpenedAt, back.OpenedAt = time.Time{}, time.Time{}
		// Extra is compared by value: marshalling compacts it and escapes <>&.
		assert.Equal(t, extraValues(t, d.Extra), extraValues(t, back.Extra))
		d.Extra, back.Extra = nil, nil
		assert.Equal(t, d, back)
	})
}

func extraValues(t *testing.T, extra map[string]json.RawMessage) map[string]any {
	t.Helper()
	if extra == nil {
		return nil
	}
	out := make(map[string]any, len(extra))
	for k, raw := range extra {
		var v any
		require.NoError(t, json.Unmarshal(raw, &v))
		out[k] = v
	}
	return out
}
