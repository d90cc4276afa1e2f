package webhooks

import (
	"fmt"
	"strings"
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
