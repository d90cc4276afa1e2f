package webhooks

import (
	"bytes"
	"slices"
)

// This file reads a JSON body for Diagnose to re-encode it the ways common
// libraries do (diagnose_encode.go), keeping its key order and number literals
// as sent. encoding/json cannot: it sorts map keys, loses the order of structs
// it does not know, and escapes <, > and &. The body is read once into a flat
// list of tokens that point into it, counted by a first pass so that the list
// is allocated once; the length of every form is counted on the way, so that
// Diagnose knows what a form costs before it writes one.

// jsonTok is one value of the body.
type jsonTok struct {
	start, end int32 // a scalar's bytes in the body, a string's with its quotes
	next       int32 // the index of the token after this value and its members
	n          int32 // an object's members or an array's elements
	sorted     int32 // where an object's keys sorted start in jsonDoc.perm; -1 when they already are
	kind       byte  // '{', '[', '"', or '0' for a number, true, false or null
	flags      uint8 // a string's: strEscaped, strNonASCII, strHTML
}

const (
	strEscaped  = 1 << iota // holds a backslash escape
	strNonASCII             // holds a character beyond ASCII, or DEL
	strHTML                 // holds <, >, &, U+2028 or U+2029
)

// jsonDoc is a parsed body and what its re-encodings can differ in.
type jsonDoc struct {
	body []byte
	toks []jsonTok
	perm []int32 // key token indexes of objects written in another order

	// Where the keys of the top level and of its user start in perm in the
	// order Cakemail sends them, or -1 when they are in that order already.
	user                 int32 // the user object's token, or -1
	rootOurs, userOurs   int32
	unsorted, reordered  bool // some object's keys are out of order; the top level's or user's are not in Cakemail's
	nonASCII, htmlChars  bool
	lengths              formLengths
	keyText              []byte  // scratch: one object's keys, decoded
	keyEnd, keys, byText []int32 // scratch: where each ends in keyText, their tokens, their order

	work    *workBudget // whose time the parse checks now and then
	expired bool        // the time ran out: the parse stopped
}

// formLengths counts what the length of a re-encoding depends on.
type formLengths struct {
	scalars     int64    // bytes of numbers, true, false and null
	strs        [3]int64 // bytes of strings and keys, per escaping
	reencoded   [3]int64 // of the body's, those of strings decoded and escaped again, per escaping
	containers  int64    // objects and arrays
	nonEmpty    int64    // of them, those with a member
	members     int64    // members of objects and elements of arrays
	keys        int64    // members of objects
	memberDepth int64    // the depth of every member, summed
	closeDepth  int64    // the depth of every non-empty container, summed
}

// length is how many bytes doc takes written with l and esc (key order does
// not change it); encoder writes exactly that many.
func (d *jsonDoc) length(l layout, esc escaping) int64 {
	n := &d.lengths
	commas := n.members - n.nonEmpty
	size := n.scalars + n.strs[esc] + 2*n.containers + commas + n.keys
	switch l {
	case layoutPython:
		size += commas + n.keys
	case layoutIndent2, layoutIndent4:
		width := int64(indentWidth(l))
		size += n.keys + n.members + n.nonEmpty + width*(n.memberDepth+n.closeDepth)
	}
	return size
}

// The order Cakemail sends its keys in: the API's payload, then the guide's.
var (
	topLevelKeys = []string{"event", "account_id", "ip", "user", "created_on", "timestamp", "data"}
	userKeys     = []string{"id", "email", "account_id"}
)

// parseJSON reads a body json.Valid accepted, or returns nil when it is
// nested deeper than maxJSONDepth or work runs out of time on the way.
func parseJSON(body []byte, work *workBudget) *jsonDoc {
	n, ok := countTokens(body)
	if !ok || n == 0 {
		return nil
	}
	d := &jsonDoc{body: body, toks: make([]jsonTok, 0, n), work: work, user: -1, rootOurs: -1, userOurs: -1}
	d.value(0, 0)
	if d.expired {
		return nil
	}
	if root := &d.toks[0]; root.kind == '{' {
		d.rootOurs = d.order(0, byRank(topLevelKeys))
		for j, k := int32(0), int32(1); j < root.n; j, k = j+1, d.toks[k+1].next {
			if d.toks[k+1].kind == '{' && bytes.Equal(d.appendKey(nil, k), []byte("user")) {
				d.user = k + 1
			}
		}
		if d.user >= 0 {
			d.userOurs = d.order(d.user, byRank(userKeys))
		}
		d.reordered = d.rootOurs >= 0 || d.userOurs >= 0
	}
	d.keyText, d.keyEnd, d.keys, d.byText = nil, nil, nil, nil
	return d
}

// countTokens counts the values of a valid body, keys included, or says it is
// nested deeper than maxJSONDepth.
func countTokens(b []byte) (n int, ok bool) {
	depth, inLiteral := 0, false
	for i := 0; i < len(b); i++ {
		switch b[i] {
		case '"':
			n, inLiteral = n+1, false
			for i++; i < len(b) && b[i] != '"'; i++ {
				if b[i] == '\\' {
					i++
				}
			}
		case '{', '[':
			if depth++; depth > maxJSONDepth {
				return 0, false
			}
			n, inLiteral = n+1, false
		case '}', ']':
			depth, inLiteral = depth-1, false
		case ',', ':', ' ', '\t', '\r', '\n':
			inLiteral = false
		default:
			if !inLiteral {
				n, inLiteral = n+1, true
			}
		}
	}
	return n, true
}

func skipSpace(b []byte, i int) int {
	for i < len(b) && (b[i] == ' ' || b[i] == '\t' || b[i] == '\r' || b[i] == '\n') {
		i++
	}
	return i
}

// value appends the tokens of the value at byte i, at depth, and returns the
// byte after it.
func (d *jsonDoc) value(i, depth int) int {
	b := d.body
	i = skipSpace(b, i)
	if i >= len(b) {
		return i
	}
	at := int32(len(d.toks))
	if at&(1<<14-1) == 0 && d.work.expired() {
		d.expired = true
	}
	if d.expired {
		return len(b)
	}
	d.toks = append(d.toks, jsonTok{})
	t := jsonTok{start: int32(i), sorted: -1, kind: b[i]}
	switch c := b[i]; c {
	case '{', '[':
		end := byte('}')
		if c == '[' {
			end = ']'
		}
		i = skipSpace(b, i+1)
		for i < len(b) && b[i] != end {
			if c == '{' {
				i = d.value(i, depth+1) // the key
				i = skipSpace(b, i) + 1 // the colon
			}
			i = skipSpace(b, d.value(i, depth+1))
			t.n++
			if i < len(b) && b[i] == ',' {
				i = skipSpace(b, i+1)
			}
		}
		i++
		n := &d.lengths
		n.containers++
		n.members += int64(t.n)
		n.memberDepth += int64(t.n) * int64(depth+1)
		if c == '{' {
			n.keys += int64(t.n)
		}
		if t.n > 0 {
			n.nonEmpty++
			n.closeDepth += int64(depth)
		}
	case '"':
		i = d.scanString(i, &t)
	default:
		t.kind = '0'
	literal:
		for ; i < len(b); i++ {
			switch b[i] {
			case ' ', '\t', '\r', '\n', ',', ']', '}':
				break literal
			}
		}
		d.lengths.scalars += int64(i) - int64(t.start)
	}
	t.end = int32(min(i, len(b)))
	t.next = int32(len(d.toks))
	d.toks[at] = t
	if t.kind == '{' && !d.expired { // an object cut short has no order
		d.toks[at].sorted = d.order(at, bytes.Compare)
		d.unsorted = d.unsorted || d.toks[at].sorted >= 0
	}
	return i
}

// scanString reads the string at byte i into t, counts its length in each
// escaping and returns the byte after it.
func (d *jsonDoc) scanString(i int, t *jsonTok) int {
	b := d.body
	for i++; i < len(b) && b[i] != '"'; i++ {
		switch c := b[i]; {
		case c == '\\':
			t.flags |= strEscaped
			i++
		case c >= 0x7f:
			t.flags |= strNonASCII
			if c == 0xE2 && i+2 < len(b) && b[i+1] == 0x80 && (b[i+2] == 0xA8 || b[i+2] == 0xA9) {
				t.flags |= strHTML // U+2028, U+2029
			}
		case c == '<' || c == '>' || c == '&':
			t.flags |= strHTML
		}
	}
	i++
	raw := b[t.start:min(i, len(b))]
	if t.flags&strEscaped != 0 {
		// Escapes may stand for anything: look at what they decode to.
		for r := range decodedRunes(raw[1 : len(raw)-1]) {
			switch {
			case r >= 0x7f:
				t.flags |= strNonASCII
				if r == '\u2028' || r == '\u2029' {
					t.flags |= strHTML
				}
			case r == '<' || r == '>' || r == '&':
				t.flags |= strHTML
			}
		}
	}
	d.nonASCII = d.nonASCII || t.flags&strNonASCII != 0
	d.htmlChars = d.htmlChars || t.flags&strHTML != 0
	for esc := range d.lengths.strs {
		d.lengths.strs[esc] += int64(stringLength(raw, t.flags, escaping(esc)))
		if !writtenAsSent(t.flags, escaping(esc)) {
			d.lengths.reencoded[esc] += int64(len(raw))
		}
	}
	return i
}

// appendKey appends the decoded text of the string token k to dst.
func (d *jsonDoc) appendKey(dst []byte, k int32) []byte {
	t := &d.toks[k]
	raw := d.body[t.start:t.end]
	if t.flags&strEscaped == 0 {
		return append(dst, raw[1:len(raw)-1]...)
	}
	for r := range decodedRunes(raw[1 : len(raw)-1]) {
		dst = appendUTF8(dst, r)
	}
	return dst
}

// order puts the keys of object o stably in cmp's order into d.perm and
// returns where they start, or -1 when that is the order they are in. Its
// scratch is reused from object to object, so it allocates only as perm grows.
func (d *jsonDoc) order(o int32, cmp func(a, b []byte) int) int32 {
	n := d.toks[o].n
	if n < 2 {
		return -1
	}
	d.keyText, d.keyEnd, d.keys = d.keyText[:0], d.keyEnd[:0], d.keys[:0]
	for j, k := int32(0), o+1; j < n; j, k = j+1, d.toks[k+1].next {
		d.keyText = d.appendKey(d.keyText, k)
		d.keyEnd = append(d.keyEnd, int32(len(d.keyText)))
		d.keys = append(d.keys, k)
	}
	text := func(j int32) []byte {
		start := int32(0)
		if j > 0 {
			start = d.keyEnd[j-1]
		}
		return d.keyText[start:d.keyEnd[j]]
	}
	inOrder := true
	for j := int32(1); j < n && inOrder; j++ {
		inOrder = cmp(text(j-1), text(j)) <= 0
	}
	if inOrder {
		return -1
	}
	d.byText = d.byText[:0]
	for j := int32(0); j < n; j++ {
		d.byText = append(d.byText, j)
	}
	slices.SortStableFunc(d.byText, func(a, b int32) int { return cmp(text(a), text(b)) })
	at := int32(len(d.perm))
	for _, j := range d.byText {
		d.perm = append(d.perm, d.keys[j])
	}
	return at
}

// byRank orders the known keys first, in known's order, and the others after.
func byRank(known []string) func(a, b []byte) int {
	rank := func(k []byte) int {
		for i, s := range known {
			if string(k) == s {
				return i
			}
		}
		return len(known)
	}
	return func(a, b []byte) int { return rank(a) - rank(b) }
}
