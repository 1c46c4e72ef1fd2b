package dockerfile

import (
	"errors"
	"fmt"
	"strings"
	"unicode"
	"unicode/utf8"
)

// escapeToken is the Dockerfile escape character. A change cannot carry the
// "# escape=" parser directive, so it is always the backslash.
const escapeToken = '\\'

// envMap is the environment that $NAME and ${NAME} refer to.
type envMap map[string]string

// newEnvMap reads "KEY=VALUE" entries; a later entry for a key wins, and an
// entry without "=" sets the key to "".
func newEnvMap(env []string) envMap {
	m := make(envMap, len(env))
	for _, e := range env {
		k, v, _ := strings.Cut(e, "=")
		m[k] = v
	}
	return m
}

// expandWord removes quotes and escapes from s and expands the variables
// in it, as a Dockerfile does for the arguments of ENV, LABEL, USER,
// WORKDIR, VOLUME and STOPSIGNAL: whitespace is kept, single quotes keep
// everything literally, double quotes keep everything but $ expansions and
// the escapes \" \$ \\, and outside quotes a backslash makes the next
// character literal.
func expandWord(s string, env envMap) (string, error) {
	l := lexer{src: s, env: env}
	word, _, err := l.run(eof)
	if err != nil {
		return "", fmt.Errorf("processing %q: %w", s, err)
	}
	return word, nil
}

// expandWords is expandWord followed by splitting at unquoted whitespace,
// including whitespace that an unquoted expansion produced, as EXPOSE
// does. Empty words are dropped.
func expandWords(s string, env envMap) ([]string, error) {
	l := lexer{src: s, env: env}
	_, words, err := l.run(eof)
	if err != nil {
		return nil, fmt.Errorf("processing %q: %w", s, err)
	}
	return words, nil
}

// eof is the rune a lexer reads past the end of its input.
const eof = -1

// lexer reads one word of a Dockerfile argument.
type lexer struct {
	src string
	pos int
	env envMap
}

func (l *lexer) peek() rune {
	if l.pos >= len(l.src) {
		return eof
	}
	r, _ := utf8.DecodeRuneInString(l.src[l.pos:])
	return r
}

func (l *lexer) next() rune {
	if l.pos >= len(l.src) {
		return eof
	}
	r, n := utf8.DecodeRuneInString(l.src[l.pos:])
	l.pos += n
	return r
}

// wordSplitter collects the words of an unquoted text.
type wordSplitter struct {
	words  []string
	cur    strings.Builder
	inWord bool
}

// add adds a character that splits words when it is whitespace.
func (w *wordSplitter) add(r rune) {
	if unicode.IsSpace(r) {
		if w.inWord && w.cur.Len() > 0 {
			w.words = append(w.words, w.cur.String())
			w.cur.Reset()
			w.inWord = false
		}
		return
	}
	w.addRaw(string(r))
}

// addRaw adds quoted or escaped text, which never splits words.
func (w *wordSplitter) addRaw(s string) {
	w.cur.WriteString(s)
	w.inWord = true
}

func (w *wordSplitter) done() []string {
	if w.cur.Len() > 0 {
		w.words = append(w.words, w.cur.String())
		w.cur.Reset()
	}
	return w.words
}

// run processes the input up to stop (eof for all of it) and returns it as
// one word and as split words. Reaching the end before stop is an error.
func (l *lexer) run(stop rune) (string, []string, error) {
	var out strings.Builder
	var words wordSplitter
	for {
		r := l.peek()
		if r == eof {
			if stop != eof {
				return "", nil, fmt.Errorf("unexpected end of text while looking for %q", stop)
			}
			return out.String(), words.done(), nil
		}
		if stop != eof && r == stop {
			l.next()
			return out.String(), words.done(), nil
		}
		switch r {
		case '$':
			v, err := l.dollar()
			if err != nil {
				return "", nil, err
			}
			out.WriteString(v)
			for _, c := range v {
				words.add(c)
			}
		case '\'':
			v, err := l.singleQuoted()
			if err != nil {
				return "", nil, err
			}
			out.WriteString(v)
			words.addRaw(v)
		case '"':
			v, err := l.doubleQuoted()
			if err != nil {
				return "", nil, err
			}
			out.WriteString(v)
			words.addRaw(v)
		case escapeToken:
			l.next()
			c := l.next()
			if c == eof {
				// A trailing escape is dropped.
				continue
			}
			out.WriteRune(c)
			words.addRaw(string(c))
		default:
			l.next()
			out.WriteRune(r)
			words.add(r)
		}
	}
}

// singleQuoted reads '…': everything up to the next single quote, literally.
func (l *lexer) singleQuoted() (string, error) {
	l.next()
	start := l.pos
	i := strings.IndexByte(l.src[start:], '\'')
	if i < 0 {
		return "", errors.New("unexpected end of text while looking for the matching single quote")
	}
	l.pos = start + i + 1
	return l.src[start : start+i], nil
}

// doubleQuoted reads "…": $ expands, and a backslash escapes only ", $ and
// itself; any other backslash stays.
func (l *lexer) doubleQuoted() (string, error) {
	l.next()
	var out strings.Builder
	for {
		switch r := l.peek(); r {
		case eof:
			return "", errors.New("unexpected end of text while looking for the matching double quote")
		case '"':
			l.next()
			return out.String(), nil
		case '$':
			v, err := l.dollar()
			if err != nil {
				return "", err
			}
			out.WriteString(v)
		default:
			l.next()
			if r == escapeToken {
				switch l.peek() {
				case eof:
					continue
				case '"', '$', escapeToken:
					r = l.next()
				}
			}
			out.WriteRune(r)
		}
	}
}

// dollar reads $NAME, ${NAME} or ${NAME<op>WORD} with op one of - :- + :+ ?
// :?, and returns its value. A $ not followed by a name is literal.
func (l *lexer) dollar() (string, error) {
	l.next()
	if l.peek() != '{' {
		name := l.name()
		if name == "" {
			return "$", nil
		}
		return l.env[name], nil
	}
	l.next()
	switch l.peek() {
	case eof:
		return "", errors.New("missing '}' in a ${} expansion")
	case '{', '}', ':':
		return "", errors.New("bad substitution in a ${} expansion")
	}
	name := l.name()
	op := l.next()
	switch op {
	case '}':
		return l.env[name], nil
	case eof:
		return "", errors.New("missing '}' in a ${} expansion")
	}
	nullIsUnset := false
	if op == ':' {
		nullIsUnset = true
		op = l.next()
	}
	switch op {
	case '-', '+', '?':
	case eof:
		return "", errors.New("missing '}' in a ${} expansion")
	default:
		return "", fmt.Errorf("unsupported modifier %q in ${%s…}", op, name)
	}
	word, _, err := l.run('}')
	if err != nil {
		return "", fmt.Errorf("${%s…}: %w", name, err)
	}
	value, set := l.env[name]
	unset := !set || nullIsUnset && value == ""
	switch op {
	case '-':
		if unset {
			return word, nil
		}
		return value, nil
	case '+':
		if unset {
			return "", nil
		}
		return word, nil
	default: // '?'
		if unset {
			if word == "" {
				word = "is not set"
				if set {
					word = "is empty"
				}
			}
			return "", fmt.Errorf("%s: %s", name, word)
		}
		return value, nil
	}
}

// name reads a variable name: letters, digits and underscores; or a run of
// digits; or one of the shell's special parameters, which are never set.
func (l *lexer) name() string {
	start := l.pos
	r := l.peek()
	switch {
	case unicode.IsDigit(r):
		for unicode.IsDigit(l.peek()) {
			l.next()
		}
		return l.src[start:l.pos]
	case strings.ContainsRune("@*#?-$!0", r):
		l.next()
		return string(r)
	}
	for r := l.peek(); r == '_' || unicode.IsLetter(r) || unicode.IsDigit(r); r = l.peek() {
		l.next()
	}
	return l.src[start:l.pos]
}
