// Package dockerfile parses single Dockerfile instructions the way
// "docker commit --change" and "podman commit --change" take them: CMD,
// ENTRYPOINT, ENV, EXPOSE, HEALTHCHECK, LABEL, MAINTAINER, ONBUILD, SHELL,
// STOPSIGNAL, USER, VOLUME and WORKDIR.
//
// Parsing follows Docker's Dockerfile parser: instruction names are
// case-insensitive; CMD, ENTRYPOINT and HEALTHCHECK CMD take a JSON array
// (exec form) or a command line kept as written (shell form); ENV and LABEL
// take name=value pairs or the legacy "name value"; the arguments of ENV,
// LABEL, EXPOSE, USER, VOLUME, WORKDIR and STOPSIGNAL have their quotes and
// escapes removed and $NAME, ${NAME}, ${NAME:-word}, ${NAME:+word} and
// ${NAME:?message} expanded from the environment given to [Parse]. A
// backslash at the end of a line continues the instruction on the next one.
//
// The package only parses. Applying an instruction to an image config (the
// current shell for a shell-form command, the current working directory for a
// relative WORKDIR) is the caller's business.
package dockerfile

import (
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/bricklayer/bricklayer/docker"
)

// Instruction is one parsed instruction. Which fields are set depends on
// Name, as each field says.
type Instruction struct {
	// Name is the instruction's name in upper case: "CMD", "ENV", …
	Name string
	// Original is the instruction as given, continuation lines joined.
	Original string
	// Args are the instruction's arguments:
	//   - CMD, ENTRYPOINT, SHELL: the exec-form argv when JSON is true, else
	//     one element, the shell-form command line exactly as written;
	//   - EXPOSE: every port named, as "PORT/PROTO", ranges expanded;
	//   - VOLUME: the paths;
	//   - USER, WORKDIR, STOPSIGNAL: one element, the value;
	//   - MAINTAINER: one element, the text as written;
	//   - ONBUILD: one element, the trigger instruction as written.
	Args []string
	// JSON is true when the Args of CMD, ENTRYPOINT or SHELL came from a
	// JSON array (exec form).
	JSON bool
	// Pairs are the name/value pairs of ENV and LABEL, in order.
	Pairs []KeyValue
	// Health is the health check of HEALTHCHECK: Test is ["NONE"],
	// ["CMD", argv...] or ["CMD-SHELL", command line].
	Health *docker.HealthConfig
}

// KeyValue is one name=value pair of ENV or LABEL.
type KeyValue struct {
	Key, Value string
}

// minHealthDuration is the shortest non-zero HEALTHCHECK duration Docker
// accepts.
const minHealthDuration = time.Millisecond

// healthFlags are the options HEALTHCHECK takes.
var healthFlags = map[string]bool{"interval": true, "timeout": true, "start-period": true, "start-interval": true, "retries": true}

// triggerNames are the instructions ONBUILD may hold; Docker checks their
// syntax when ONBUILD is parsed and runs them in a later build.
var triggerNames = map[string]bool{
	"ADD": true, "ARG": true, "CMD": true, "COPY": true, "ENTRYPOINT": true, "ENV": true, "EXPOSE": true,
	"HEALTHCHECK": true, "LABEL": true, "RUN": true, "SHELL": true, "STOPSIGNAL": true, "USER": true,
	"VOLUME": true, "WORKDIR": true,
}

var (
	// lineWhitespace is what separates an instruction from its arguments
	// and, for EXPOSE, VOLUME and legacy ENV, the arguments themselves.
	lineWhitespace = regexp.MustCompile(`[\t\v\f\r ]+`)
	// continuation ends a line that the next one continues.
	continuation = regexp.MustCompile(`\\[ \t]*$`)
)

// Parse parses one instruction. env ("KEY=VALUE" entries, a later one
// winning) is what $NAME refers to; Docker uses the image's environment,
// so ENV a=1 b=$a sees the a from before the instruction.
//
// The text holds one instruction; blank lines and "#" comment lines around
// it are ignored, and a line ending in a backslash is continued by the next.
// Errors say what is wrong; callers quote the whole text in their own.
func Parse(text string, env []string) (*Instruction, error) {
	if !utf8.ValidString(text) {
		return nil, errors.New("the instruction is not valid UTF-8")
	}
	line, err := joinLines(text)
	if err != nil {
		return nil, err
	}
	name, rest := splitCommand(line)
	switch name {
	case "CMD", "ENTRYPOINT", "SHELL", "ENV", "LABEL", "EXPOSE", "USER", "WORKDIR", "STOPSIGNAL",
		"VOLUME", "MAINTAINER", "ONBUILD", "HEALTHCHECK":
	case "FROM", "RUN", "ADD", "COPY", "ARG":
		return nil, fmt.Errorf("%s is a build step, not an image config change", name)
	default:
		return nil, fmt.Errorf("unknown instruction %s", name)
	}
	flags, rest, err := extractFlags(rest)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	if name != "HEALTHCHECK" {
		if names := slices.Sorted(maps.Keys(flags)); len(names) > 0 {
			return nil, fmt.Errorf("%s: unknown flag --%s", name, names[0])
		}
	}
	ins := &Instruction{Name: name, Original: line}
	envs := newEnvMap(env)
	switch name {
	case "CMD", "ENTRYPOINT":
		if rest == "" {
			return nil, fmt.Errorf("%s requires at least one argument (%s [] sets none)", name, name)
		}
		ins.Args, ins.JSON, err = maybeJSON(rest)
	case "SHELL":
		if rest == "" {
			return nil, errors.New("SHELL requires at least one argument")
		}
		ins.Args, ins.JSON, err = maybeJSON(rest)
		switch {
		case err != nil:
		case !ins.JSON:
			err = errors.New(`SHELL requires the arguments in JSON form, as in SHELL ["/bin/sh", "-c"]`)
		case len(ins.Args) == 0:
			err = errors.New("SHELL requires at least one argument")
		}
	case "ENV", "LABEL":
		ins.Pairs, err = parsePairs(name, rest, envs)
	case "EXPOSE":
		ins.Args, err = parseExpose(rest, envs)
	case "USER", "WORKDIR", "STOPSIGNAL":
		ins.Args, err = parseOneValue(name, rest, envs)
	case "VOLUME":
		ins.Args, err = parseVolume(rest, envs)
	case "MAINTAINER":
		if rest == "" {
			return nil, errors.New("MAINTAINER requires exactly one argument")
		}
		ins.Args = []string{rest}
	case "ONBUILD":
		err = checkTrigger(rest)
		ins.Args = []string{rest}
	case "HEALTHCHECK":
		ins.Health, err = parseHealthcheck(rest, flags)
	}
	if err != nil {
		return nil, err
	}
	return ins, nil
}

// joinLines returns the one instruction of text with its continuation lines
// joined, as Docker's parser does: leading whitespace of the first line is
// dropped, a line ending in a backslash (and spaces or tabs) is continued by
// the next, and blank and comment lines inside the instruction are skipped.
func joinLines(text string) (string, error) {
	lines := strings.Split(text, "\n")
	for i, l := range lines {
		lines[i] = strings.TrimSuffix(l, "\r")
	}
	skippable := func(l string) bool {
		l = strings.TrimLeftFunc(l, unicode.IsSpace)
		return l == "" || l[0] == '#'
	}
	i := 0
	for i < len(lines) && skippable(lines[i]) {
		i++
	}
	if i == len(lines) {
		return "", errors.New("no instruction")
	}
	line := strings.TrimLeftFunc(lines[i], unicode.IsSpace)
	i++
	more := continuation.MatchString(line)
	line = continuation.ReplaceAllString(line, "")
	for more {
		if i == len(lines) {
			return "", errors.New("the last line ends with a line continuation")
		}
		l := lines[i]
		i++
		if skippable(l) {
			continue
		}
		more = continuation.MatchString(l)
		line += continuation.ReplaceAllString(l, "")
	}
	for ; i < len(lines); i++ {
		if !skippable(lines[i]) {
			return "", errors.New("more than one instruction; give each its own change")
		}
	}
	// Docker would continue such a line with the next change.
	if strings.HasSuffix(strings.TrimRightFunc(line, unicode.IsSpace), string(escapeToken)) {
		return "", errors.New("the last line ends with a line continuation")
	}
	return line, nil
}

// splitCommand returns the upper-cased instruction name and the trimmed
// rest of the line.
func splitCommand(line string) (name, rest string) {
	parts := lineWhitespace.Split(strings.TrimSpace(line), 2)
	name = strings.ToUpper(parts[0])
	if len(parts) == 2 {
		rest = strings.TrimSpace(parts[1])
	}
	return name, rest
}

// extractFlags takes the --name=value (or --name value) options from the
// start of rest, up to the first word not starting with "--" or a lone
// "--". Quotes in a flag word are removed and a backslash escapes the next
// character. A flag given twice is an error.
func extractFlags(rest string) (map[string]string, string, error) {
	flags := map[string]string{}
	var pending string // a flag waiting for its value in the next word
	havePending := false
	pos := 0
	for {
		for pos < len(rest) && isLineSpace(rest[pos]) {
			pos++
		}
		if pos == len(rest) {
			break
		}
		if !havePending && !strings.HasPrefix(rest[pos:], "--") {
			break
		}
		word, next, err := flagWord(rest, pos)
		if err != nil {
			return nil, "", err
		}
		pos = next
		if havePending {
			flags[pending] = word
			havePending = false
			continue
		}
		if word == "--" {
			break
		}
		name, value, hasValue := strings.Cut(word[2:], "=")
		if name == "" {
			return nil, "", fmt.Errorf("flag %q has no name", word)
		}
		if _, dup := flags[name]; dup {
			return nil, "", fmt.Errorf("flag --%s given twice", name)
		}
		flags[name] = value
		if !hasValue {
			pending, havePending = name, true
		}
	}
	// A flag left waiting has the value "": unknown to most instructions,
	// and missing its value for HEALTHCHECK.
	return flags, strings.TrimSpace(rest[pos:]), nil
}

// flagWord reads the word of rest starting at pos, removing its quotes and
// escapes, and returns it with the position after it.
func flagWord(rest string, pos int) (string, int, error) {
	var b strings.Builder
	quote := byte(0)
	for ; pos < len(rest); pos++ {
		c := rest[pos]
		switch {
		case quote == 0 && isLineSpace(c):
			return b.String(), pos, nil
		case quote == 0 && (c == '"' || c == '\''):
			quote = c
			continue
		case quote != 0 && c == quote:
			quote = 0
			continue
		case c == escapeToken && quote != '\'' && pos+1 < len(rest):
			pos++
			c = rest[pos]
		}
		b.WriteByte(c)
	}
	if quote != 0 {
		return "", 0, fmt.Errorf("unterminated %c quote in a flag", quote)
	}
	return b.String(), pos, nil
}

func isLineSpace(c byte) bool {
	return c == ' ' || c == '\t' || c == '\v' || c == '\f' || c == '\r'
}

// errNotStrings is Docker's error for a JSON array holding something other
// than strings.
var errNotStrings = errors.New("a JSON array of arguments must hold strings only")

// maybeJSON reads rest as a JSON array of strings when it is one, and as a
// single shell-form string when it is not. A JSON array holding anything
// but strings is an error; text that starts with "[" but is not JSON is
// shell form, as in Docker.
func maybeJSON(rest string) ([]string, bool, error) {
	args, err := parseJSON(rest)
	if err == nil {
		return args, true, nil
	}
	if errors.Is(err, errNotStrings) {
		return nil, false, err
	}
	return []string{rest}, false, nil
}

// parseJSON reads a JSON array of strings.
func parseJSON(rest string) ([]string, error) {
	if !strings.HasPrefix(strings.TrimLeftFunc(rest, unicode.IsSpace), "[") {
		return nil, errors.New("not a JSON array")
	}
	var raw []any
	if err := json.Unmarshal([]byte(rest), &raw); err != nil {
		return nil, err
	}
	args := make([]string, 0, len(raw))
	for _, v := range raw {
		s, ok := v.(string)
		if !ok {
			return nil, errNotStrings
		}
		args = append(args, s)
	}
	return args, nil
}

// parseWords splits rest into words at whitespace outside quotes, keeping
// the quotes and escapes in the words, as Docker does before processing
// each word of ENV and LABEL.
func parseWords(rest string) []string {
	var words []string
	var b strings.Builder
	inWord, blankOK := false, false
	quote := rune(0)
	for i := 0; i < len(rest); {
		r, n := utf8.DecodeRuneInString(rest[i:])
		i += n
		if quote != 0 {
			if r == quote {
				quote = 0
			} else if r == escapeToken && quote != '\'' {
				if i == len(rest) {
					continue // a trailing escape is dropped
				}
				b.WriteRune(r)
				r, n = utf8.DecodeRuneInString(rest[i:])
				i += n
			}
			b.WriteRune(r)
			continue
		}
		if unicode.IsSpace(r) {
			if inWord && (blankOK || b.Len() > 0) {
				words = append(words, b.String())
			}
			b.Reset()
			inWord, blankOK = false, false
			continue
		}
		inWord = true
		switch r {
		case '\'', '"':
			quote, blankOK = r, true
		case escapeToken:
			if i == len(rest) {
				continue
			}
			b.WriteRune(r)
			r, n = utf8.DecodeRuneInString(rest[i:])
			i += n
		}
		b.WriteRune(r)
	}
	if inWord && (blankOK || b.Len() > 0) {
		words = append(words, b.String())
	}
	return words
}

// parsePairs reads the pairs of ENV or LABEL: name=value words, or the
// legacy "name value" where the value is the rest of the line. Names and
// values have quotes and escapes removed and variables expanded.
func parsePairs(instr, rest string, env envMap) ([]KeyValue, error) {
	words := parseWords(rest)
	if len(words) == 0 {
		return nil, fmt.Errorf("%s requires at least one argument", instr)
	}
	var raw [][2]string
	if !strings.Contains(words[0], "=") {
		parts := lineWhitespace.Split(rest, 2)
		if len(parts) < 2 {
			return nil, fmt.Errorf("%s must have two arguments: %s name=value or %s name value", instr, instr, instr)
		}
		raw = append(raw, [2]string{parts[0], parts[1]})
	} else {
		for _, w := range words {
			k, v, ok := strings.Cut(w, "=")
			if !ok {
				return nil, fmt.Errorf("%s: no = in %q; the form is name=value", instr, w)
			}
			raw = append(raw, [2]string{k, v})
		}
	}
	pairs := make([]KeyValue, 0, len(raw))
	for _, kv := range raw {
		if kv[0] == "" {
			return nil, fmt.Errorf("%s names can not be blank", instr)
		}
		k, err := expandWord(kv[0], env)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", instr, err)
		}
		if k == "" {
			return nil, fmt.Errorf("%s: name %q expands to nothing", instr, kv[0])
		}
		if strings.Contains(k, "=") {
			return nil, fmt.Errorf("%s: name %q contains =", instr, k)
		}
		v, err := expandWord(kv[1], env)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", instr, err)
		}
		pairs = append(pairs, KeyValue{Key: k, Value: v})
	}
	return pairs, nil
}

// parseExpose reads EXPOSE's port specs, each expanded and split into
// words, and returns every port they name.
func parseExpose(rest string, env envMap) ([]string, error) {
	if rest == "" {
		return nil, errors.New("EXPOSE requires at least one argument")
	}
	var ports []string
	for _, f := range lineWhitespace.Split(rest, -1) {
		words, err := expandWords(f, env)
		if err != nil {
			return nil, fmt.Errorf("EXPOSE: %w", err)
		}
		for _, w := range words {
			p, err := ParsePorts(w)
			if err != nil {
				return nil, fmt.Errorf("EXPOSE: %w", err)
			}
			ports = append(ports, p...)
		}
	}
	if len(ports) == 0 {
		return nil, errors.New("EXPOSE: no port remains after expansion")
	}
	return ports, nil
}

// parseOneValue reads the single value of USER, WORKDIR or STOPSIGNAL: the
// rest of the line with quotes and escapes removed and variables expanded.
func parseOneValue(instr, rest string, env envMap) ([]string, error) {
	if rest == "" {
		return nil, fmt.Errorf("%s requires exactly one argument", instr)
	}
	v, err := expandWord(rest, env)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", instr, err)
	}
	if v == "" {
		return nil, fmt.Errorf("%s: the value is empty", instr)
	}
	if instr == "STOPSIGNAL" {
		if err := CheckSignal(v); err != nil {
			return nil, fmt.Errorf("STOPSIGNAL: %w", err)
		}
	}
	return []string{v}, nil
}

// parseVolume reads VOLUME's paths: a JSON array, or words separated by
// whitespace; each is then expanded (JSON strings too, as in Docker), and
// none may be empty.
func parseVolume(rest string, env envMap) ([]string, error) {
	if rest == "" {
		return nil, errors.New("VOLUME requires at least one argument")
	}
	raw, err := parseJSON(rest)
	switch {
	case errors.Is(err, errNotStrings):
		return nil, fmt.Errorf("VOLUME: %w", err)
	case err != nil:
		raw = lineWhitespace.Split(rest, -1)
	}
	if len(raw) == 0 {
		return nil, errors.New("VOLUME requires at least one argument")
	}
	paths := make([]string, 0, len(raw))
	for _, r := range raw {
		p, err := expandWord(r, env)
		if err != nil {
			return nil, fmt.Errorf("VOLUME: %w", err)
		}
		if p == "" {
			return nil, errors.New("VOLUME: a path is empty")
		}
		paths = append(paths, p)
	}
	return paths, nil
}

// checkTrigger checks ONBUILD's trigger the way Docker does when it parses
// ONBUILD: a known instruction other than ONBUILD, FROM and MAINTAINER, with
// well-formed options, JSON and name=value pairs. Its variables belong to
// the later build, so its values are not expanded or checked further.
func checkTrigger(trigger string) error {
	if trigger == "" {
		return errors.New("ONBUILD requires at least one argument")
	}
	name, rest := splitCommand(trigger)
	switch {
	case name == "ONBUILD":
		return errors.New("chaining ONBUILD via ONBUILD ONBUILD is not allowed")
	case name == "FROM" || name == "MAINTAINER":
		return fmt.Errorf("%s is not allowed as an ONBUILD trigger", name)
	case !triggerNames[name]:
		return fmt.Errorf("ONBUILD: unknown instruction %s", name)
	}
	_, rest, err := extractFlags(rest)
	if err != nil {
		return fmt.Errorf("ONBUILD %s: %w", name, err)
	}
	switch name {
	case "CMD", "ENTRYPOINT", "RUN", "SHELL", "ADD", "COPY", "VOLUME":
		if _, err := parseJSON(rest); errors.Is(err, errNotStrings) {
			return fmt.Errorf("ONBUILD %s: %w", name, err)
		}
	case "ENV", "LABEL":
		// Expanding nothing leaves the structure checks.
		if _, err := parsePairs(name, rest, nil); err != nil {
			return fmt.Errorf("ONBUILD %w", err)
		}
	}
	return nil
}

// parseHealthcheck reads HEALTHCHECK [options] CMD command, or NONE.
func parseHealthcheck(rest string, flags map[string]string) (*docker.HealthConfig, error) {
	h := &docker.HealthConfig{}
	for _, name := range slices.Sorted(maps.Keys(flags)) {
		if err := setHealthFlag(h, name, flags[name]); err != nil {
			return nil, fmt.Errorf("HEALTHCHECK: %w", err)
		}
	}
	if rest == "" {
		return nil, errors.New("HEALTHCHECK requires at least one argument")
	}
	typ, cmd := rest, ""
	if i := strings.IndexFunc(rest, unicode.IsSpace); i >= 0 {
		typ, cmd = rest[:i], strings.TrimLeftFunc(rest[i:], unicode.IsSpace)
	}
	switch strings.ToUpper(typ) {
	case "NONE":
		if cmd != "" {
			return nil, errors.New("HEALTHCHECK NONE takes no arguments")
		}
		if len(flags) > 0 {
			return nil, errors.New("HEALTHCHECK NONE takes no options")
		}
		return &docker.HealthConfig{Test: []string{"NONE"}}, nil
	case "CMD":
	default:
		return nil, fmt.Errorf("unknown type %q in HEALTHCHECK (try CMD)", typ)
	}
	if cmd == "" {
		return nil, errors.New("missing command after HEALTHCHECK CMD")
	}
	args, isJSON, err := maybeJSON(cmd)
	if err != nil {
		return nil, fmt.Errorf("HEALTHCHECK: %w", err)
	}
	if !isJSON {
		h.Test = []string{"CMD-SHELL", cmd}
		return h, nil
	}
	if len(args) == 0 {
		return nil, errors.New("missing command after HEALTHCHECK CMD")
	}
	h.Test = append([]string{"CMD"}, args...)
	return h, nil
}

// setHealthFlag sets the option name of a health check to v.
func setHealthFlag(h *docker.HealthConfig, name, v string) error {
	if !healthFlags[name] {
		return fmt.Errorf("unknown flag --%s", name)
	}
	if v == "" {
		return fmt.Errorf("flag --%s has no value", name)
	}
	if name == "retries" {
		n, err := strconv.ParseInt(v, 10, 32)
		if err != nil {
			return fmt.Errorf("--retries %q is not a number", v)
		}
		if n < 0 {
			return fmt.Errorf("--retries cannot be negative (%d)", n)
		}
		h.Retries = int(n)
		return nil
	}
	d, err := time.ParseDuration(v)
	if err != nil {
		return fmt.Errorf("--%s %q is not a duration", name, v)
	}
	if d != 0 && d < minHealthDuration {
		return fmt.Errorf("--%s cannot be less than %s", name, minHealthDuration)
	}
	switch name {
	case "interval":
		h.Interval = d
	case "timeout":
		h.Timeout = d
	case "start-period":
		h.StartPeriod = d
	case "start-interval":
		h.StartInterval = d
	}
	return nil
}
