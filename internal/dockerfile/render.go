package dockerfile

import (
	"bytes"
	"encoding/json"
	"strconv"
	"strings"
	"time"
)

// String writes the instruction back as Dockerfile text. Parsing that text
// with the same environment gives the same instruction (but for Original),
// provided no value holds a newline, which one instruction cannot carry.
// Values are double-quoted with ", $ and \ escaped, so nothing is expanded
// twice.
func (ins *Instruction) String() string {
	var b strings.Builder
	b.WriteString(ins.Name)
	switch ins.Name {
	case "CMD", "ENTRYPOINT", "SHELL":
		b.WriteByte(' ')
		if ins.JSON {
			b.WriteString(jsonArray(ins.Args))
		} else if len(ins.Args) > 0 {
			b.WriteString(endFlags(ins.Args[0]))
		}
	case "ENV", "LABEL":
		for _, kv := range ins.Pairs {
			b.WriteByte(' ')
			b.WriteString(quoteWord(kv.Key))
			b.WriteByte('=')
			b.WriteString(quoteWord(kv.Value))
		}
	case "EXPOSE":
		for _, p := range ins.Args {
			b.WriteByte(' ')
			b.WriteString(p)
		}
	case "VOLUME":
		// A JSON array is the one form that keeps spaces in a path; its
		// strings are expanded after decoding, so they are quoted inside.
		quoted := make([]string, len(ins.Args))
		for i, p := range ins.Args {
			quoted[i] = quoteWord(p)
		}
		b.WriteByte(' ')
		b.WriteString(jsonArray(quoted))
	case "USER", "WORKDIR", "STOPSIGNAL":
		for _, a := range ins.Args {
			b.WriteByte(' ')
			b.WriteString(quoteWord(a))
		}
	case "MAINTAINER", "ONBUILD":
		for _, a := range ins.Args {
			b.WriteByte(' ')
			b.WriteString(endFlags(a))
		}
	case "HEALTHCHECK":
		writeHealth(&b, ins)
	}
	return b.String()
}

func writeHealth(b *strings.Builder, ins *Instruction) {
	h := ins.Health
	if h == nil || len(h.Test) == 0 || h.Test[0] == "NONE" {
		b.WriteString(" NONE")
		return
	}
	for _, d := range []struct {
		name string
		d    time.Duration
	}{{"interval", h.Interval}, {"timeout", h.Timeout}, {"start-period", h.StartPeriod}, {"start-interval", h.StartInterval}} {
		if d.d != 0 {
			b.WriteString(" --" + d.name + "=" + d.d.String())
		}
	}
	if h.Retries != 0 {
		b.WriteString(" --retries=" + strconv.Itoa(h.Retries))
	}
	b.WriteString(" CMD ")
	if h.Test[0] == "CMD-SHELL" && len(h.Test) == 2 {
		b.WriteString(h.Test[1])
		return
	}
	b.WriteString(jsonArray(h.Test[1:]))
}

// endFlags puts "-- " before text written as is that would otherwise be
// read as options.
func endFlags(s string) string {
	if strings.HasPrefix(s, "--") {
		return "-- " + s
	}
	return s
}

// quoteWord double-quotes s so that Dockerfile word processing gives s back.
func quoteWord(s string) string {
	r := strings.NewReplacer(`\`, `\\`, `"`, `\"`, `$`, `\$`)
	return `"` + r.Replace(s) + `"`
}

// jsonArray encodes args as a JSON array, leaving <, > and & as they are.
func jsonArray(args []string) string {
	if args == nil {
		args = []string{}
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(args) // strings always encode
	return strings.TrimSuffix(buf.String(), "\n")
}
