package dockerfile

import (
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/bricklayer/bricklayer/docker"
)

// parseCase is one row of the table below. want is what Docker's
// Dockerfile parser (which "docker commit --change" uses) makes of text;
// note says where podman commit --change differs or where we are stricter.
type parseCase struct {
	text    string
	env     []string
	want    Instruction // Name, Args, JSON, Pairs, Health; Original is not compared
	errSub  string      // non-empty: Parse must fail with this in the message
	errIs   error
	note    string
	skipRnd bool // not a round-trip seed
}

var testEnv = []string{"HOME=/root", "PATH=/usr/bin:/bin", "EMPTY=", "PORTS=80 81/udp", "U=1000", "D=/data", "a=0"}

var parseCases = []parseCase{
	// CMD and ENTRYPOINT: a JSON array of strings is the exec form; anything
	// else is the shell form, kept exactly as written (the caller prepends
	// the shell). No variable expansion: the shell does it at run time.
	{text: `CMD ["/bin/app", "-v"]`, want: Instruction{Name: "CMD", Args: []string{"/bin/app", "-v"}, JSON: true}},
	{text: `cmd echo "hi $HOME"`, want: Instruction{Name: "CMD", Args: []string{`echo "hi $HOME"`}}},
	{text: `  CMD   [ "a" ]  `, want: Instruction{Name: "CMD", Args: []string{"a"}, JSON: true}},
	{text: `CMD []`, want: Instruction{Name: "CMD", Args: []string{}, JSON: true}},
	{text: `CMD [foo`, want: Instruction{Name: "CMD", Args: []string{"[foo"}}, note: "not JSON, so shell form"},
	{text: `CMD ["a"] extra`, want: Instruction{Name: "CMD", Args: []string{`["a"] extra`}}},
	{text: `CMD ["a", 1]`, errSub: "strings only"},
	{text: `CMD`, errSub: "requires at least one argument", note: "Docker makes [/bin/sh -c]; podman too; an empty CMD is most likely a mistake"},
	{text: `CMD --verbose`, errSub: "unknown flag --verbose", note: "Docker takes leading --words as options; use CMD -- --verbose or JSON"},
	{text: `CMD -- --verbose`, want: Instruction{Name: "CMD", Args: []string{"--verbose"}}},
	{text: "CMD echo a \\\n  b", want: Instruction{Name: "CMD", Args: []string{"echo a   b"}}, note: "line continuation"},
	{text: "CMD echo a \\  \t\n# comment\n\n  b", want: Instruction{Name: "CMD", Args: []string{"echo a   b"}}, note: "comment and blank lines inside a continuation are skipped"},
	{text: "# set the command\nCMD x\n", want: Instruction{Name: "CMD", Args: []string{"x"}}},
	{text: "CMD a\nCMD b", errSub: "more than one instruction", note: "Docker would apply both"},
	{text: "CMD a \\", errSub: "ends with a line continuation", note: "Docker would continue with the next change"},
	{text: "CMD a \\\n", errSub: "ends with a line continuation"},
	{text: "", errSub: "no instruction"},
	{text: "# only a comment", errSub: "no instruction"},
	{text: `ENTRYPOINT ["/usr/bin/tini", "--"]`, want: Instruction{Name: "ENTRYPOINT", Args: []string{"/usr/bin/tini", "--"}, JSON: true}},
	{text: `Entrypoint exec /app --port=80`, want: Instruction{Name: "ENTRYPOINT", Args: []string{"exec /app --port=80"}}},
	{text: `ENTRYPOINT ["a", null]`, errSub: "strings only"},

	// SHELL takes the JSON form only.
	{text: `SHELL ["/bin/bash", "-o", "pipefail", "-c"]`, want: Instruction{Name: "SHELL", Args: []string{"/bin/bash", "-o", "pipefail", "-c"}, JSON: true}},
	{text: `SHELL /bin/bash -c`, errSub: "JSON form"},
	{text: `SHELL []`, errSub: "at least one argument"},

	// ENV: name=value pairs, quotes and escapes removed, variables expanded
	// from the environment before the instruction.
	{text: `ENV A=1 B="two words" C='$HOME' D=$HOME E=${HOME}x F=\$x`, env: testEnv, want: Instruction{Name: "ENV", Pairs: []KeyValue{
		{"A", "1"}, {"B", "two words"}, {"C", "$HOME"}, {"D", "/root"}, {"E", "/rootx"}, {"F", "$x"}}},
		note: "podman keeps the quotes of anything but a whole-value double quote and expands nothing"},
	{text: `ENV PATH=$PATH:/opt/bin`, env: testEnv, want: Instruction{Name: "ENV", Pairs: []KeyValue{{"PATH", "/usr/bin:/bin:/opt/bin"}}}},
	{text: `ENV a=1 b=$a`, env: testEnv, want: Instruction{Name: "ENV", Pairs: []KeyValue{{"a", "1"}, {"b", "0"}}}, note: "b sees a from before the instruction"},
	{text: `ENV MY_NAME John Doe`, want: Instruction{Name: "ENV", Pairs: []KeyValue{{"MY_NAME", "John Doe"}}}, note: "legacy form; podman makes MY_NAME John Doe= of it"},
	{text: `ENV K "quoted legacy"`, want: Instruction{Name: "ENV", Pairs: []KeyValue{{"K", "quoted legacy"}}}},
	{text: `ENV a=x\ y b="x\"y" c="C:\path" d=C:\path e=it\'s f="it's"`, want: Instruction{Name: "ENV", Pairs: []KeyValue{
		{"a", "x y"}, {"b", `x"y`}, {"c", `C:\path`}, {"d", "C:path"}, {"e", "it's"}, {"f", "it's"}}}},
	{text: `ENV a=${UNSET:-dflt} b=${HOME:+set} c=${EMPTY:-e} d=${EMPTY-e} e=${UNSET+x} f=${EMPTY:+x}`, env: testEnv, want: Instruction{Name: "ENV", Pairs: []KeyValue{
		{"a", "dflt"}, {"b", "set"}, {"c", "e"}, {"d", ""}, {"e", ""}, {"f", ""}}}},
	{text: `ENV a=${HOME:?} b=$ c=$1 d=${UNSET:-"x y"}`, env: testEnv, want: Instruction{Name: "ENV", Pairs: []KeyValue{{"a", "/root"}, {"b", "$"}, {"c", ""}, {"d", "x y"}}}},
	{text: `ENV "a b"=c =d`, errSub: "names can not be blank"},
	{text: `ENV x="${UNSET:?must be set}"`, errSub: "UNSET: must be set"},
	{text: `ENV x=${UNSET:?must be set}`, errSub: `no = in "be"`, note: "words split before expansion, as in Docker"},
	{text: `ENV x=${EMPTY:?}`, env: testEnv, errSub: "EMPTY: is empty"},
	{text: `ENV x=${HOME%/*}`, env: testEnv, errSub: "unsupported modifier", note: "Docker supports # % / patterns; we do not"},
	{text: `ENV x=${HOME`, errSub: "missing '}'"},
	{text: `ENV x=${HOME:-a`, errSub: "looking for '}'"},
	{text: `ENV x=${}`, errSub: "bad substitution"},
	{text: `ENV A`, errSub: "must have two arguments"},
	{text: `ENV`, errSub: "at least one argument"},
	{text: `ENV A=1 B`, errSub: `no = in "B"`},
	{text: `ENV =x`, errSub: "names can not be blank"},
	{text: `ENV A="unterminated`, errSub: "double quote"},
	{text: `ENV A='unterminated`, errSub: "single quote"},
	{text: `ENV $UNSET=x`, errSub: "expands to nothing"},
	{text: `ENV --x=1 A=1`, errSub: "unknown flag --x"},

	// LABEL: as ENV.
	{text: `LABEL version="1.0" "com.example.vendor"="ACME Inc" home=$HOME`, env: testEnv, want: Instruction{Name: "LABEL", Pairs: []KeyValue{
		{"version", "1.0"}, {"com.example.vendor", "ACME Inc"}, {"home", "/root"}}}},
	{text: "label description=\"multi \\\nline\"", want: Instruction{Name: "LABEL", Pairs: []KeyValue{{"description", "multi line"}}}},
	{text: `LABEL maintainer Jane`, want: Instruction{Name: "LABEL", Pairs: []KeyValue{{"maintainer", "Jane"}}}, note: "legacy form; podman requires ="},
	{text: `LABEL a`, errSub: "must have two arguments"},

	// EXPOSE: ports, port/proto, ranges; expansions are split into words.
	{text: `EXPOSE 80`, want: Instruction{Name: "EXPOSE", Args: []string{"80/tcp"}}},
	{text: `expose 80/udp 443/TCP  53/sctp`, want: Instruction{Name: "EXPOSE", Args: []string{"80/udp", "443/tcp", "53/sctp"}}, note: "podman takes one port per EXPOSE and no sctp"},
	{text: `EXPOSE 8000-8002/tcp`, want: Instruction{Name: "EXPOSE", Args: []string{"8000/tcp", "8001/tcp", "8002/tcp"}}, note: "podman refuses ranges"},
	{text: `EXPOSE $PORTS 0080`, env: testEnv, want: Instruction{Name: "EXPOSE", Args: []string{"80/tcp", "81/udp", "80/tcp"}}},
	{text: `EXPOSE 0`, errSub: "out of the range", errIs: ErrInvalidPort, note: "Docker accepts 0"},
	{text: `EXPOSE 65536`, errSub: "out of the range", errIs: ErrInvalidPort},
	{text: `EXPOSE 80/icmp`, errSub: "tcp, udp or sctp", errIs: ErrInvalidPort},
	{text: `EXPOSE 80/`, errSub: "tcp, udp or sctp", errIs: ErrInvalidPort, note: "Docker takes an empty protocol for tcp"},
	{text: `EXPOSE 90-80`, errSub: "ends before it starts", errIs: ErrInvalidPort},
	{text: `EXPOSE 8080:80`, errSub: "publishing", errIs: ErrInvalidPort, note: "Docker exposes the container port 80"},
	{text: `EXPOSE http`, errSub: `"http" is not a port number`, errIs: ErrInvalidPort},
	{text: `EXPOSE 80-`, errSub: "missing", errIs: ErrInvalidPort},
	{text: `EXPOSE`, errSub: "at least one argument"},
	{text: `EXPOSE $UNSET`, errSub: "no port remains"},

	// USER, WORKDIR, STOPSIGNAL: the whole rest, quotes removed, expanded.
	{text: `USER app:app`, want: Instruction{Name: "USER", Args: []string{"app:app"}}},
	{text: `USER "$U"`, env: testEnv, want: Instruction{Name: "USER", Args: []string{"1000"}}, note: "podman keeps the text as written"},
	{text: `USER`, errSub: "exactly one argument"},
	{text: `USER ""`, errSub: "empty"},
	{text: `WORKDIR /srv/app`, want: Instruction{Name: "WORKDIR", Args: []string{"/srv/app"}}},
	{text: `WORKDIR rel/dir`, want: Instruction{Name: "WORKDIR", Args: []string{"rel/dir"}}, note: "the caller joins it to the current directory"},
	{text: `WORKDIR "/a b"`, want: Instruction{Name: "WORKDIR", Args: []string{"/a b"}}},
	{text: `WORKDIR $UNSET`, errSub: "empty"},
	{text: `STOPSIGNAL SIGTERM`, want: Instruction{Name: "STOPSIGNAL", Args: []string{"SIGTERM"}}, note: "podman stores the number, 15"},
	{text: `stopsignal term`, want: Instruction{Name: "STOPSIGNAL", Args: []string{"term"}}},
	{text: `STOPSIGNAL 9`, want: Instruction{Name: "STOPSIGNAL", Args: []string{"9"}}},
	{text: `STOPSIGNAL SIGRTMIN+3`, want: Instruction{Name: "STOPSIGNAL", Args: []string{"SIGRTMIN+3"}}},
	{text: `STOPSIGNAL 0`, errSub: "invalid signal", errIs: ErrInvalidSignal},
	{text: `STOPSIGNAL 65`, errSub: "invalid signal", errIs: ErrInvalidSignal, note: "Docker accepts any positive number"},
	{text: `STOPSIGNAL SIGFOO`, errSub: "invalid signal", errIs: ErrInvalidSignal},
	{text: `STOPSIGNAL RTMIN+16`, errSub: "invalid signal", errIs: ErrInvalidSignal},

	// VOLUME: a JSON array or words; each is expanded.
	{text: `VOLUME /data /logs`, want: Instruction{Name: "VOLUME", Args: []string{"/data", "/logs"}}},
	{text: `VOLUME ["/data", "/var/log"]`, want: Instruction{Name: "VOLUME", Args: []string{"/data", "/var/log"}}},
	{text: `VOLUME ["/a b"]`, want: Instruction{Name: "VOLUME", Args: []string{"/a b"}}},
	{text: `VOLUME $D "/q"`, env: testEnv, want: Instruction{Name: "VOLUME", Args: []string{"/data", "/q"}}},
	{text: `VOLUME [""]`, errSub: "empty"},
	{text: `VOLUME []`, errSub: "at least one argument"},
	{text: `VOLUME [1]`, errSub: "strings only"},
	{text: `VOLUME`, errSub: "at least one argument"},

	// ONBUILD: the trigger is kept as written and checked as Docker does.
	{text: `ONBUILD RUN make install`, want: Instruction{Name: "ONBUILD", Args: []string{"RUN make install"}}},
	{text: `onbuild add . /app/src`, want: Instruction{Name: "ONBUILD", Args: []string{"add . /app/src"}}},
	{text: `ONBUILD ENV a=$UNSET`, want: Instruction{Name: "ONBUILD", Args: []string{"ENV a=$UNSET"}}, note: "expanded by the later build"},
	{text: `ONBUILD COPY --from=build /out /`, want: Instruction{Name: "ONBUILD", Args: []string{"COPY --from=build /out /"}}},
	{text: `ONBUILD ONBUILD RUN x`, errSub: "chaining ONBUILD"},
	{text: `ONBUILD FROM alpine`, errSub: "not allowed as an ONBUILD trigger"},
	{text: `ONBUILD MAINTAINER me`, errSub: "not allowed as an ONBUILD trigger"},
	{text: `ONBUILD FOO bar`, errSub: "unknown instruction FOO", note: "Docker accepts it and fails in the later build"},
	{text: `ONBUILD CMD [1]`, errSub: "strings only"},
	{text: `ONBUILD ENV a`, errSub: "must have two arguments"},
	{text: `ONBUILD`, errSub: "at least one argument"},

	// HEALTHCHECK: options, CMD in exec or shell form, or NONE.
	{text: `HEALTHCHECK NONE`, want: Instruction{Name: "HEALTHCHECK", Health: &docker.HealthConfig{Test: []string{"NONE"}}}},
	{text: `healthcheck none`, want: Instruction{Name: "HEALTHCHECK", Health: &docker.HealthConfig{Test: []string{"NONE"}}}},
	{text: `HEALTHCHECK --interval=5m --timeout=3s CMD curl -f http://localhost/ || exit 1`, want: Instruction{Name: "HEALTHCHECK", Health: &docker.HealthConfig{
		Test: []string{"CMD-SHELL", "curl -f http://localhost/ || exit 1"}, Interval: 5 * time.Minute, Timeout: 3 * time.Second}}},
	{text: `HEALTHCHECK --interval 30s --retries=3 CMD ["/bin/check", "-q"]`, want: Instruction{Name: "HEALTHCHECK", Health: &docker.HealthConfig{
		Test: []string{"CMD", "/bin/check", "-q"}, Interval: 30 * time.Second, Retries: 3}}},
	{text: `HEALTHCHECK --start-period=10s --start-interval="2s" --interval=0s cmd true`, want: Instruction{Name: "HEALTHCHECK", Health: &docker.HealthConfig{
		Test: []string{"CMD-SHELL", "true"}, StartPeriod: 10 * time.Second, StartInterval: 2 * time.Second}}},
	{text: `HEALTHCHECK NONE extra`, errSub: "takes no arguments"},
	{text: `HEALTHCHECK --interval=1s NONE`, errSub: "takes no options", note: "Docker ignores the options"},
	{text: `HEALTHCHECK CMD`, errSub: "missing command"},
	{text: `HEALTHCHECK CMD []`, errSub: "missing command"},
	{text: `HEALTHCHECK CMD ["a", 2]`, errSub: "strings only"},
	{text: `HEALTHCHECK --retries=-1 CMD x`, errSub: "cannot be negative"},
	{text: `HEALTHCHECK --retries=many CMD x`, errSub: "not a number"},
	{text: `HEALTHCHECK --interval=10us CMD x`, errSub: "cannot be less than 1ms"},
	{text: `HEALTHCHECK --timeout=-1s CMD x`, errSub: "cannot be less than 1ms"},
	{text: `HEALTHCHECK --interval=abc CMD x`, errSub: "not a duration"},
	{text: `HEALTHCHECK --bogus=1 CMD x`, errSub: "unknown flag --bogus"},
	{text: `HEALTHCHECK --interval=1s --interval=2s CMD x`, errSub: "given twice"},
	{text: `HEALTHCHECK --interval`, errSub: "has no value"},
	{text: `HEALTHCHECK --interval="1s CMD x`, errSub: "unterminated"},
	{text: `HEALTHCHECK CMD-SHELL x`, errSub: "unknown type", note: "CMD-SHELL is what the shell form of CMD becomes"},
	{text: `HEALTHCHECK`, errSub: "at least one argument"},

	// MAINTAINER sets the author; Docker refuses it in commit --change.
	{text: `MAINTAINER Jane Doe <jane@example.com>`, want: Instruction{Name: "MAINTAINER", Args: []string{"Jane Doe <jane@example.com>"}}},
	{text: `MAINTAINER`, errSub: "exactly one argument"},

	// Anything else.
	{text: `FOO bar`, errSub: "unknown instruction FOO"},
	{text: `RUN make`, errSub: "build step"},
	{text: `FROM alpine`, errSub: "build step"},
	{text: "CMD \xff", errSub: "UTF-8"},
}

func TestParse(t *testing.T) {
	for _, tc := range parseCases {
		t.Run(tc.text, func(t *testing.T) {
			got, err := Parse(tc.text, tc.env)
			if tc.errSub != "" {
				if err == nil {
					t.Fatalf("Parse(%q) = %+v, want an error with %q", tc.text, got, tc.errSub)
				}
				if !strings.Contains(err.Error(), tc.errSub) {
					t.Fatalf("Parse(%q) error %q, want it to contain %q", tc.text, err, tc.errSub)
				}
				if tc.errIs != nil && !errors.Is(err, tc.errIs) {
					t.Fatalf("Parse(%q) error %q is not %v", tc.text, err, tc.errIs)
				}
				return
			}
			if err != nil {
				t.Fatalf("Parse(%q): %v", tc.text, err)
			}
			got.Original = ""
			if !reflect.DeepEqual(*got, tc.want) {
				t.Fatalf("Parse(%q)\n got %#v\nwant %#v", tc.text, *got, tc.want)
			}
			checkRoundTrip(t, tc.text, tc.env, got)
		})
	}
}

// checkRoundTrip parses the instruction's String() again and wants the same.
func checkRoundTrip(t *testing.T, text string, env []string, ins *Instruction) {
	t.Helper()
	s := ins.String()
	again, err := Parse(s, env)
	if err != nil {
		t.Fatalf("Parse(%q) gave %#v, whose String() %q does not parse: %v", text, *ins, s, err)
	}
	a, b := *ins, *again
	a.Original, b.Original = "", ""
	if !reflect.DeepEqual(a, b) {
		t.Fatalf("Parse(%q) gave\n %#v\nbut its String() %q parses to\n %#v", text, a, s, b)
	}
}

func TestParseOriginal(t *testing.T) {
	got, err := Parse("  ENV a=1 \\\n  b=2  ", nil)
	if err != nil {
		t.Fatal(err)
	}
	if want := "ENV a=1   b=2  "; got.Original != want {
		t.Errorf("Original = %q, want %q", got.Original, want)
	}
}

func TestParsePorts(t *testing.T) {
	for _, tc := range []struct {
		spec string
		want []string
	}{
		{"80", []string{"80/tcp"}},
		{"80/UDP", []string{"80/udp"}},
		{"1-3/sctp", []string{"1/sctp", "2/sctp", "3/sctp"}},
		{"65535", []string{"65535/tcp"}},
		{"7-7", []string{"7/tcp"}},
	} {
		got, err := ParsePorts(tc.spec)
		if err != nil || !reflect.DeepEqual(got, tc.want) {
			t.Errorf("ParsePorts(%q) = %v, %v; want %v", tc.spec, got, err, tc.want)
		}
	}
	for _, spec := range []string{"", "/tcp", "-1", "+80", "80/tcp/x", "1-2-3", "99999999999999999999", " 80", "80-65536", "٣"} {
		_, err := ParsePorts(spec)
		if !errors.Is(err, ErrInvalidPort) || !strings.Contains(err.Error(), `"`+spec+`"`) {
			t.Errorf("ParsePorts(%q) error = %v, want ErrInvalidPort quoting the input", spec, err)
		}
	}
}

func TestCheckSignal(t *testing.T) {
	for _, s := range []string{"SIGTERM", "TERM", "term", "SigKill", "1", "64", "SIGRTMIN", "RTMIN+15", "SIGRTMAX-14", "RTMAX", "SIGCHLD", "SIGWINCH"} {
		if err := CheckSignal(s); err != nil {
			t.Errorf("CheckSignal(%q): %v", s, err)
		}
	}
	for _, s := range []string{"", "0", "65", "-1", "+9", "9x", "SIG", "SIGFOO", "RTMIN+0", "RTMIN+16", "RTMAX-15", "RTMIN+01", "SIGTERM ", "SIGSIGTERM"} {
		err := CheckSignal(s)
		if !errors.Is(err, ErrInvalidSignal) || !strings.Contains(err.Error(), `"`+s+`"`) {
			t.Errorf("CheckSignal(%q) error = %v, want ErrInvalidSignal quoting the input", s, err)
		}
	}
}
