package dockerfile

import (
	"strings"
	"testing"
)

// FuzzParseChange parses arbitrary text as a --change instruction. Parse must
// not panic, and whatever it accepts must round-trip: String() parses again
// to the same instruction. The seeds are the table of TestParse plus a few
// awkward inputs; "go test" runs them.
func FuzzParseChange(f *testing.F) {
	for _, tc := range parseCases {
		f.Add(tc.text)
	}
	for _, s := range []string{
		`ENV a="\$\\\"" b='\' c=\`,
		"CMD -- --",
		"MAINTAINER -- --me",
		`VOLUME ["\"quoted\"", "$HOME", "it's"]`,
		"LABEL \"k\\\"\"=\"v\\\\\"",
		"HEALTHCHECK --retries=2147483647 --timeout=2562047h CMD [\"a\\u0000b\"]",
		"EXPOSE 1-65535/udp",
		"USER \t\v x \f",
		"WORKDIR ${HOME:+${PATH}}",
		"ENV x=${a:-${b:-${c:-d}}}",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, text string) {
		if strings.Count(text, "-") > 3 {
			t.Skip("many port ranges make millions of ports: slow, not interesting")
		}
		ins, err := Parse(text, testEnv)
		if err != nil {
			return
		}
		if ins.Name == "" || ins.Name != strings.ToUpper(ins.Name) {
			t.Fatalf("Parse(%q) gave name %q", text, ins.Name)
		}
		for _, kv := range ins.Pairs {
			if kv.Key == "" || strings.Contains(kv.Key, "=") {
				t.Fatalf("Parse(%q) gave the pair name %q", text, kv.Key)
			}
		}
		for _, v := range append(append([]string{}, ins.Args...), pairValues(ins.Pairs)...) {
			if strings.Contains(v, "\n") {
				return // one line cannot carry it; String says so
			}
		}
		checkRoundTrip(t, text, testEnv, ins)
	})
}

func pairValues(pairs []KeyValue) []string {
	var out []string
	for _, kv := range pairs {
		out = append(out, kv.Key, kv.Value)
	}
	return out
}
