package webhooks

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"runtime/debug"
	"strings"
	"sync"
)

// HandlerFunc handles one verified event. Returning nil acknowledges it; an
// error asks for the delivery again, so a handler must be safe to run twice.
type HandlerFunc func(ctx context.Context, e *Event) error

// ErrHandlerPanic is wrapped by the error Dispatch returns when a handler panics.
var ErrHandlerPanic = errors.New("webhooks: event handler panicked")

// Router sends each event to the handler registered for its type. It serves
// HTTP behind Verifier.Middleware, and its Dispatch runs the same routes from
// a queue worker. It is safe for concurrent use. The zero Router is ready to
// use, as a zero http.ServeMux is: it has no routes and acknowledges every event.
type Router struct {
	// ErrorLog receives handler errors and panics from ServeHTTP; nil means slog.Default().
	ErrorLog *slog.Logger

	mu        sync.RWMutex
	routes    map[EventType]HandlerFunc // nil until the first On
	unhandled HandlerFunc
}

// NewRouter returns a Router with no routes that acknowledges every event,
// as a zero Router does.
func NewRouter() *Router {
	return &Router{routes: make(map[EventType]HandlerFunc)}
}

// On routes events of type t to h. A known name in any documented spelling
// ("email.opened", "Email.Opened") is resolved to its canonical type, as
// ParseEventType does; a name the SDK does not know is routed exactly as given,
// so new Cakemail events can be handled before the SDK lists them.
//
// On panics, as http.ServeMux does for a bad pattern, when the same type is
// registered twice, and when t is not a known name but a misspelling of one:
// one edit from it ("email.openned", "emial.opened", "Email.Bounce") or it
// without its past-tense ending ("Email.Open"). Such a route would never match,
// and the events it was meant for would be acknowledged and dropped. The panic
// names the event t resembles. Names further from every known one, as a new
// event's are ("Email.Forwarded", "Contact.Resubscribed"), route as given; a
// new event that close to a known one reaches OnUnhandled, with its RawType.
func (r *Router) On(t EventType, h HandlerFunc) {
	if h == nil {
		panic("webhooks: Router.On(" + string(t) + ") with a nil handler")
	}
	if string(t) == "" {
		panic("webhooks: Router.On with an empty event type")
	}
	if like, ok := lookalikeEventType(string(t)); ok {
		panic(fmt.Sprintf("webhooks: Router.On(%q): unknown event type, a misspelling of %s: did you mean webhooks.Event%s?",
			t, like, strings.ReplaceAll(string(like), ".", "")))
	}
	canonical := canonicalEventType(string(t))
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, dup := r.routes[canonical]; dup {
		panic(fmt.Sprintf("webhooks: Router.On(%q): %s already has a handler", t, canonical))
	}
	if r.routes == nil {
		r.routes = make(map[EventType]HandlerFunc)
	}
	r.routes[canonical] = h
}

// OnUnhandled sets the handler for events with no route, unknown types
// included. Without one they are acknowledged and ignored.
func (r *Router) OnUnhandled(h HandlerFunc) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.unhandled = h
}

// Handles reports whether Dispatch runs a handler for events of type t: a
// route for it, or the unhandled handler. A queue that fans deliveries out
// to several routers asks it to skip the routers with nothing to do.
func (r *Router) Handles(t EventType) bool {
	r.mu.RLock()
	defer r.mu.RUnlock()
	if r.unhandled != nil {
		return true
	}
	if _, ok := r.routes[t]; ok {
		return true
	}
	_, ok := r.routes[canonicalEventType(string(t))]
	return ok
}

// Dispatch runs the handler for e's type, or the unhandled handler, and returns
// its error. A panicking handler is recovered into an error wrapping
// ErrHandlerPanic, so one bad event cannot take a worker or server down.
func (r *Router) Dispatch(ctx context.Context, e *Event) (err error) {
	if e == nil {
		return fmt.Errorf("%w: nil event", ErrInvalidEvent)
	}
	r.mu.RLock()
	h, ok := r.routes[e.Type]
	if !ok {
		// An event built by hand may carry a non-canonical spelling.
		h, ok = r.routes[canonicalEventType(string(e.Type))]
	}
	if !ok {
		h = r.unhandled
	}
	r.mu.RUnlock()
	if h == nil {
		return nil
	}
	defer func() {
		if p := recover(); p != nil {
			err = &panicError{value: p, stack: debug.Stack()}
		}
	}()
	return h(ctx, e)
}

// ServeHTTP dispatches the event that Verifier.Middleware put in the request
// context. It answers 200 when the handler returns nil, and 500, so that
// Cakemail delivers again, when it returns an error or panics; the error goes
// to ErrorLog, never to the response.
func (r *Router) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	event, ok := EventFromContext(req.Context())
	if !ok {
		r.logger().Error("webhooks: Router.ServeHTTP got a request without a verified event; wrap it in Verifier.Middleware",
			"path", req.URL.Path)
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	if err := r.Dispatch(req.Context(), event); err != nil {
		attrs := []any{"event", event.Type, "error", err}
		var p *panicError
		if errors.As(err, &p) {
			attrs = append(attrs, "stack", string(p.stack))
		}
		r.logger().Error("webhooks: event handler failed; answering 500 so Cakemail retries", attrs...)
		http.Error(w, "event not processed", http.StatusInternalServerError)
		return
	}
	w.WriteHeader(http.StatusOK)
}

func (r *Router) logger() *slog.Logger {
	if r.ErrorLog != nil {
		return r.ErrorLog
	}
	return slog.Default()
}

// panicError is a recovered handler panic, with the stack kept for the log.
type panicError struct {
	value any
	stack []byte
}

func (p *panicError) Error() string { return fmt.Sprintf("%v: %v", ErrHandlerPanic, p.value) }

func (p *panicError) Unwrap() error { return ErrHandlerPanic }

// Stack is the panicking goroutine's stack, for a queue worker's log: find it
// with errors.As(err, &s) where s is an interface{ Stack() []byte }.
func (p *panicError) Stack() []byte { return p.stack }

// HandleData adapts a handler that wants the event's data decoded into T, a
// struct or map of the caller's choosing. Data that does not decode into T is
// an error wrapping ErrInvalidEvent, and the handler is not called.
func HandleData[T any](fn func(ctx context.Context, e *Event, data T) error) HandlerFunc {
	return func(ctx context.Context, e *Event) error {
		var data T
		if !isNullJSON(e.Data) {
			if err := e.DecodeData(&data); err != nil {
				if errors.Is(err, ErrInvalidEvent) { // EmailData's errors say it already
					return err
				}
				return fmt.Errorf("%w: %w", ErrInvalidEvent, err)
			}
		}
		return fn(ctx, e, data)
	}
}
