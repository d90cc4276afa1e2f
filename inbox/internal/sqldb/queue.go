package sqldb

import (
	"regexp"
	"strings"
)

// DefaultSubscriber is the router given to Open: the subscriber every inbox
// has. Its jobs' args carry no subscriber, as before subscribers existed, so
// their unique keys, and the duplicates they recognise, are unchanged.
const DefaultSubscriber = "default"

// subscriberQueuePrefix starts the queue of every added subscriber.
const subscriberQueuePrefix = "cakemail_inbox_"

// Queue is the River queue a subscriber's jobs wait in: River's default
// queue for the default subscriber, cakemail_inbox_NAME for the others. A
// queue of its own gives each subscriber workers of its own, so one that
// hangs never holds the others back, and a process that does not know a
// subscriber never fetches its jobs.
func Queue(subscriber string) string {
	if subscriber == "" || subscriber == DefaultSubscriber {
		return "default"
	}
	return subscriberQueuePrefix + subscriber
}

// Subscriber is the subscriber whose jobs wait in queue, or "" for a queue
// that is no subscriber's.
func Subscriber(queue string) string {
	if queue == "default" {
		return DefaultSubscriber
	}
	if name, ok := strings.CutPrefix(queue, subscriberQueuePrefix); ok && name != "" {
		return name
	}
	return ""
}

// SubscriberQueuePattern matches, with LIKE ... ESCAPE '\', the queues of
// added subscribers.
const SubscriberQueuePattern = `cakemail\_inbox\_%`

// subscriberName is what a subscriber may be called: a short identifier that
// fits River's queue names, tags and Prometheus label values alike.
var subscriberName = regexp.MustCompile(`^[a-z][a-z0-9]*(_[a-z0-9]+)*$`)

// MaxSubscriberName bounds a subscriber's name.
const MaxSubscriberName = 32

// ValidSubscriberName reports whether name can name a subscriber.
func ValidSubscriberName(name string) bool {
	return len(name) <= MaxSubscriberName && subscriberName.MatchString(name)
}
