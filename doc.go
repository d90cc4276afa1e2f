// Package webhooks is the Go SDK for Cakemail webhooks: it verifies the signed
// deliveries Cakemail sends to your service, turns them into typed events, and
// manages webhooks on the Cakemail API.
//
// # Receiving deliveries
//
// Cakemail signs each delivery with HMAC-SHA256 of the raw request body, keyed
// with the webhook's secret (shown only by [Client.Get]). A [Verifier] checks it;
// its [Verifier.Middleware] rejects anything unsigned before your handler runs
// and puts the parsed [Event] in the request context:
//
//	v, err := webhooks.NewVerifier([]string{os.Getenv("CAKEMAIL_WEBHOOK_SECRET")})
//	if err != nil {
//		log.Fatal(err)
//	}
//	http.Handle("POST /webhooks/cakemail", v.Middleware(http.HandlerFunc(
//		func(w http.ResponseWriter, r *http.Request) {
//			event, _ := webhooks.EventFromContext(r.Context())
//			log.Printf("%s in account %d", event.Type, event.AccountID)
//		})))
//
// Always hash the bytes as received: JSON that was parsed and marshalled again
// differs from what Cakemail signed and fails verification. Every header form
// Cakemail documents is accepted: [SignatureHeader] and [LegacySignatureHeader],
// base64 or hex digests, with or without a "sha256=" prefix. Give NewVerifier
// the old and the new secret while you rotate one.
//
// # Events
//
// [ParseEvent] reads both payload shapes Cakemail documents: the API's
// (created_on in Unix seconds, account_id, user) and the guide's (timestamp in
// RFC 3339). Event types the SDK does not know are kept as sent. [ParseEventType]
// accepts canonical names in any case and the lower-case names of Cakemail's
// CLI documentation, such as "email.spam_complaint".
//
// # Managing webhooks
//
// A [Client] calls the Cakemail API with an access token or with a username and
// password, refreshing tokens as they expire. One webhook listens to one event:
// to send several events to one URL, create one webhook per event. The API has
// no delete; [Client.Archive] stops deliveries and [Client.Unarchive] resumes them.
//
// # Errors and retries
//
// API failures are [*APIError] values that match [ErrNotFound], [ErrUnauthorized],
// [ErrValidation] and the other sentinels with [errors.Is]. Reads, updates and
// (un)archiving are retried on transport errors, 429 and 5xx; creation is retried
// only when the server cannot have received it, so a retry never makes a
// second webhook.
//
// # Testing
//
// Package webhookstest is an in-memory Cakemail: it serves the API, signs and
// sends deliveries to your handlers, and injects faults.
package webhooks
