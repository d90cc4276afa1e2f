// Package webhooks is the Go SDK for Cakemail webhooks: it verifies the signed
// deliveries Cakemail sends to your service, turns them into typed events, and
// manages webhooks on the Cakemail API.
//
// # Receiving deliveries
//
// Cakemail signs each delivery with HMAC-SHA256 of the raw request body, keyed
// with the webhook's secret (shown only by [Client.Get]). A [Verifier] checks it;
// its [Verifier.Middleware] refuses anything unsigned before your handler runs
// and puts the parsed [Event] in the request context, and a [Router] sends each
// event to the handler registered for its type:
//
//	router := webhooks.NewRouter()
//	router.On(webhooks.EventEmailOpened, func(ctx context.Context, e *webhooks.Event) error {
//		slog.Info("email opened", "account", e.AccountID)
//		return nil // only once the effect is stored: nil answers 200
//	})
//
//	http.Handle("POST /webhooks/cakemail", verifier.Middleware(router))
//
// Always hash the bytes as received: JSON that was parsed and marshalled again
// differs from what Cakemail signed and fails verification. Every header form
// Cakemail documents is accepted: [SignatureHeader] and [LegacySignatureHeader],
// base64 or hex digests, with or without a "sha256=" prefix. Give NewVerifier
// every secret that may sign a delivery: the secrets of each event's webhook
// for the URL ([Client.Secrets]), and the old and the new one during a rotation.
// [WithOnReject] hears why each refused delivery was refused, and for a
// signature that fails, [Diagnose] says why (a newline added, JSON encoded
// again, the wrong webhook's secret...) and what to do; the hook's error gives
// the [Diagnosis] to [errors.As].
//
// # Receiving reliably
//
// Cakemail forgets a delivery once it gets a 2xx and retries it after an error,
// so a 2xx must mean the event is safe. [Router.ServeHTTP] answers 200 only
// when the handler returns nil, and 500 when it fails or panics; a handler
// returns nil only after its effect is stored durably. Deliveries can arrive
// twice (after a lost answer, and while a secret rotates) with the same body
// and no id: deduplicate on a hash of the verified body. For slow work, store
// the verified body in a durable queue before answering and run the same
// routes from the queue's worker with [Router.Dispatch]; examples/receiver in
// the repository does that on River.
//
// # Events
//
// [ParseEvent] reads both payload shapes Cakemail documents: the API's
// (created_on in Unix seconds, account_id, user) and the guide's (timestamp in
// RFC 3339). Event.Type is canonical whatever spelling was sent ("email.opened"
// is [EventEmailOpened]) and Event.RawType keeps it as sent; event types the SDK
// does not know are kept as sent. [ParseEventType] accepts canonical names in
// any case and the lower-case names of Cakemail's CLI documentation, such as
// "email.spam_complaint". [Router.On] panics on a misspelling of a known name
// ("email.openned"), whose route would never match, and routes any other
// unknown name as given.
//
// [HandleData] and [Event.DecodeData] decode an event's data into a type of
// your choosing. [EmailData] is the data of the Email.* events in every shape
// Cakemail documents: ids sent as strings or numbers come out as exact text,
// and what the documents do not show stays reachable in EmailData.Extra.
//
// # Managing webhooks
//
// A [Client] calls the Cakemail API with an access token or with a username and
// password, refreshing tokens as they expire. One webhook listens to one event,
// with its own secret; [Client.Apply] makes the webhooks of one URL match a
// [Subscription] (a set of events and a rate limit), idempotently, and
// [Client.Secrets] lists the secrets its receiver needs. The API has no delete;
// [Client.Archive] stops deliveries and [Client.Unarchive] resumes them. It
// cannot change a secret either: [Client.Rotate] creates the replacement webhook.
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
