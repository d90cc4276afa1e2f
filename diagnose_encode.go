package webhooks

import (
	"bytes"
	"iter"
	"unicode/utf16"
	"unicode/utf8"
)

// This file writes a jsonDoc (diagnose_json.go) in one of the forms common
// JSON libraries produce. It allocates nothing but its output: strings with
// escapes are decoded as they are written, not through encoding/json.

type layout int

const (
	layoutCompact layout = iota // "," and ":"
	layoutPython                // ", " and ": ", Python's json.dumps default
	layoutIndent2               // newlines, 2 spaces per level, ": "
	layoutIndent4
)

func indentWidth(l layout) int {
	if l == layoutIndent4 {
		return 4
	}
	return 2
}

type escaping int

const (
	escapeUTF8  escaping = iota // only what JSON requires: JavaScript, Python with ensure_ascii=False
	escapeASCII                 // everything beyond ASCII as \u: Python's default ensure_ascii
	escapeHTML                  // <, >, &, U+2028 and U+2029 as \u: Go's encoding/json
)

// keysIn is the order an encoder writes an object's keys in.
type keysIn int

const (
	keysAsReceived keysIn = iota
	keysCakemail          // the top level's and user's in the order Cakemail sends them
	keysSorted            // Python's sort_keys, Go's maps
)

// encoder writes a jsonDoc in one form. It only reads the jsonDoc, so
// several encoders can share one.
type encoder struct {
	doc    *jsonDoc
	buf    []byte
	keys   keysIn
	layout layout
	esc    escaping
}

// spaces is enough indentation for maxJSONDepth levels of 4.
var spaces = "\n" + string(bytes.Repeat([]byte(" "), 4*maxJSONDepth))

func (e *encoder) value(i int32, depth int) {
	d := e.doc
	t := &d.toks[i]
	switch t.kind {
	case '"':
		e.buf = appendString(e.buf, d.body[t.start:t.end], t.flags, e.esc)
	case '0':
		e.buf = append(e.buf, d.body[t.start:t.end]...)
	case '[':
		if t.n == 0 {
			e.buf = append(e.buf, "[]"...)
			return
		}
		e.buf = append(e.buf, '[')
		for j, v := int32(0), i+1; j < t.n; j, v = j+1, d.toks[v].next {
			e.separate(j, depth+1)
			e.value(v, depth+1)
		}
		e.close(']', depth)
	case '{':
		if t.n == 0 {
			e.buf = append(e.buf, "{}"...)
			return
		}
		perm := int32(-1)
		switch {
		case e.keys == keysSorted:
			perm = t.sorted
		case e.keys == keysCakemail && i == 0:
			perm = d.rootOurs
		case e.keys == keysCakemail && i == d.user:
			perm = d.userOurs
		}
		e.buf = append(e.buf, '{')
		k := i + 1
		for j := int32(0); j < t.n; j++ {
			if perm >= 0 {
				k = d.perm[perm+j]
			}
			e.separate(j, depth+1)
			key := &d.toks[k]
			e.buf = appendString(e.buf, d.body[key.start:key.end], key.flags, e.esc)
			if e.layout == layoutCompact {
				e.buf = append(e.buf, ':')
			} else {
				e.buf = append(e.buf, ": "...)
			}
			e.value(k+1, depth+1)
			k = d.toks[k+1].next
		}
		e.close('}', depth)
	}
}

// separate writes what comes before the j-th member at depth.
func (e *encoder) separate(j int32, depth int) {
	switch e.layout {
	case layoutCompact:
		if j > 0 {
			e.buf = append(e.buf, ',')
		}
	case layoutPython:
		if j > 0 {
			e.buf = append(e.buf, ", "...)
		}
	default:
		if j > 0 {
			e.buf = append(e.buf, ',')
		}
		e.buf = append(e.buf, spaces[:1+depth*indentWidth(e.layout)]...)
	}
}

func (e *encoder) close(c byte, depth int) {
	if e.layout == layoutIndent2 || e.layout == layoutIndent4 {
		e.buf = append(e.buf, spaces[:1+depth*indentWidth(e.layout)]...)
	}
	e.buf = append(e.buf, c)
}

// writtenAsSent says whether a string with flags is written in esc exactly as
// it was received.
func writtenAsSent(flags uint8, esc escaping) bool {
	return flags&strEscaped == 0 && (esc == escapeUTF8 ||
		esc == escapeASCII && flags&strNonASCII == 0 || esc == escapeHTML && flags&strHTML == 0)
}

// appendString appends the string token raw (quotes included) written in esc:
// as sent when that cannot differ, else decoded and quoted again, with runs
// that need no change copied whole.
func appendString(dst, raw []byte, flags uint8, esc escaping) []byte {
	if writtenAsSent(flags, esc) {
		return append(dst, raw...)
	}
	s := raw[1 : len(raw)-1]
	dst = append(dst, '"')
	start := 0
	copied := &copiedAsIs[esc]
	for i := 0; i < len(s); {
		if copied[s[i]] {
			i++
			continue
		}
		r, size, same := nextChar(s, i, esc)
		if !same {
			dst = append(dst, s[start:i]...)
			dst = appendRune(dst, r, esc)
			start = i + size
		}
		i += size
	}
	dst = append(dst, s[start:]...)
	return append(dst, '"')
}

// stringLength is len(appendString(nil, raw, flags, esc)), counted without
// writing.
func stringLength(raw []byte, flags uint8, esc escaping) int {
	if writtenAsSent(flags, esc) {
		return len(raw)
	}
	s := raw[1 : len(raw)-1]
	n := 2
	var char [12]byte
	copied := &copiedAsIs[esc]
	for i := 0; i < len(s); {
		if copied[s[i]] {
			n++
			i++
			continue
		}
		r, size, same := nextChar(s, i, esc)
		if same {
			n += size
		} else {
			n += len(appendRune(char[:0], r, esc))
		}
		i += size
	}
	return n
}

// copiedAsIs tells, per escaping, the bytes of a string that are written as
// they are whatever follows them: printable ASCII but for '"' and '\\', what
// the escaping leaves alone, and in UTF-8 every byte of a multibyte character.
var copiedAsIs = func() (t [3][256]bool) {
	for esc := range t {
		for c := 0x20; c < 256; c++ {
			t[esc][c] = c != '"' && c != '\\' && c != 0x7f && c < utf8.RuneSelf
		}
	}
	for c := utf8.RuneSelf; c < 256; c++ {
		t[escapeUTF8][c] = true
		t[escapeHTML][c] = c != 0xE2 // which starts U+2028 and U+2029
	}
	t[escapeUTF8][0x7f], t[escapeHTML][0x7f] = true, true
	for _, c := range "<>&" {
		t[escapeHTML][c] = false
	}
	return t
}()

// nextChar reads the character at s[i], the inside of a string token, and
// says whether esc writes it as its size bytes are, unchanged.
func nextChar(s []byte, i int, esc escaping) (r rune, size int, same bool) {
	switch c := s[i]; {
	case c == '\\':
		r, size = decodeEscape(s[i:])
		return r, size, false
	case c < utf8.RuneSelf:
		return rune(c), 1, c >= 0x20 && c != '"' && !(c == 0x7f && esc == escapeASCII) &&
			!(esc == escapeHTML && (c == '<' || c == '>' || c == '&'))
	}
	r, size = utf8.DecodeRune(s[i:])
	return r, size, esc == escapeUTF8 || esc == escapeHTML && r != '\u2028' && r != '\u2029'
}

// appendRune writes r as a JSON string character in esc.
func appendRune(dst []byte, r rune, esc escaping) []byte {
	switch r {
	case '"', '\\':
		return append(dst, '\\', byte(r))
	case '\n':
		return append(dst, '\\', 'n')
	case '\r':
		return append(dst, '\\', 'r')
	case '\t':
		return append(dst, '\\', 't')
	case '\b':
		return append(dst, '\\', 'b')
	case '\f':
		return append(dst, '\\', 'f')
	}
	switch {
	case r < 0x20, r == 0x7f && esc == escapeASCII,
		esc == escapeHTML && (r == '<' || r == '>' || r == '&' || r == '\u2028' || r == '\u2029'):
		return appendU(dst, r)
	case esc == escapeASCII && r > 0xFFFF: // a surrogate pair, as Python writes it
		hi, lo := utf16.EncodeRune(r)
		return appendU(appendU(dst, hi), lo)
	case esc == escapeASCII && r >= utf8.RuneSelf:
		return appendU(dst, r)
	}
	return appendUTF8(dst, r)
}

const hexDigits = "0123456789abcdef"

// appendU writes r, at most 0xFFFF, as \u and four lower-case hex digits.
func appendU(dst []byte, r rune) []byte {
	return append(dst, '\\', 'u', hexDigits[r>>12&0xF], hexDigits[r>>8&0xF], hexDigits[r>>4&0xF], hexDigits[r&0xF])
}

func appendUTF8(dst []byte, r rune) []byte {
	if r < utf8.RuneSelf {
		return append(dst, byte(r))
	}
	return utf8.AppendRune(dst, r)
}

// decodedRunes yields the characters of s, the inside of a JSON string, with
// its escapes decoded as encoding/json decodes them: a lone surrogate, or a
// byte that is not UTF-8, is U+FFFD.
func decodedRunes(s []byte) iter.Seq[rune] {
	return func(yield func(rune) bool) {
		for i := 0; i < len(s); {
			r, size := rune(s[i]), 1
			switch {
			case s[i] == '\\':
				r, size = decodeEscape(s[i:])
			case s[i] >= utf8.RuneSelf:
				r, size = utf8.DecodeRune(s[i:])
			}
			if !yield(r) {
				return
			}
			i += size
		}
	}
}

// decodeEscape decodes the escape at the start of s, a surrogate pair's two
// \u escapes as one, and returns it with its length.
func decodeEscape(s []byte) (rune, int) {
	if len(s) < 2 {
		return utf8.RuneError, len(s)
	}
	switch s[1] {
	case 'b':
		return '\b', 2
	case 'f':
		return '\f', 2
	case 'n':
		return '\n', 2
	case 'r':
		return '\r', 2
	case 't':
		return '\t', 2
	case 'u':
		r, ok := hex4(s[2:])
		if !ok {
			return utf8.RuneError, min(len(s), 6)
		}
		if !utf16.IsSurrogate(r) {
			return r, 6
		}
		if len(s) >= 12 && s[6] == '\\' && s[7] == 'u' {
			if lo, ok := hex4(s[8:]); ok {
				if pair := utf16.DecodeRune(r, lo); pair != utf8.RuneError {
					return pair, 12
				}
			}
		}
		return utf8.RuneError, 6
	}
	return rune(s[1]), 2 // \" \\ \/
}

func hex4(s []byte) (rune, bool) {
	if len(s) < 4 {
		return 0, false
	}
	var r rune
	for _, c := range s[:4] {
		v, ok := fromHexChar(c)
		if !ok {
			return 0, false
		}
		r = r<<4 | rune(v)
	}
	return r, true
}
