package dockerfile

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// Errors for values that EXPOSE and STOPSIGNAL (and the setters that take
// the same values) refuse; test with errors.Is.
var (
	// ErrInvalidPort: a port spec is not PORT[-PORT][/PROTO] with ports in
	// 1-65535 and PROTO one of tcp, udp, sctp.
	ErrInvalidPort = errors.New("invalid port")
	// ErrInvalidSignal: a stop signal is neither a signal name (SIGTERM,
	// TERM, RTMIN+3) nor a number from 1 to 64.
	ErrInvalidSignal = errors.New("invalid signal")
)

// maxSignal is the highest signal number on Linux (SIGRTMAX).
const maxSignal = 64

// ParsePorts reads a port spec, "80", "80/udp" or a range "8000-8010/tcp",
// and returns each port it names as "PORT/PROTO", protocol lower-cased and
// "tcp" by default. Errors quote spec and wrap [ErrInvalidPort].
//
// Docker also accepts port 0, an empty protocol ("80/") and the publishing
// forms "IP:HOST:CONTAINER"; none of them describes a port an image exposes,
// so they are refused here.
func ParsePorts(spec string) ([]string, error) {
	bad := func(why string) error {
		return fmt.Errorf("port %q: %w: %s", spec, ErrInvalidPort, why)
	}
	ports, proto, hasProto := strings.Cut(spec, "/")
	if !hasProto {
		proto = "tcp"
	}
	proto = strings.ToLower(proto)
	switch proto {
	case "tcp", "udp", "sctp":
	default:
		return nil, bad("the protocol must be tcp, udp or sctp")
	}
	if strings.Contains(ports, ":") {
		return nil, bad("publishing a port (HOST:CONTAINER) is not part of an image")
	}
	first, last, isRange := strings.Cut(ports, "-")
	lo, err := parsePort(first)
	if err != nil {
		return nil, bad(err.Error())
	}
	hi := lo
	if isRange {
		if hi, err = parsePort(last); err != nil {
			return nil, bad(err.Error())
		}
		if hi < lo {
			return nil, bad("the range ends before it starts")
		}
	}
	out := make([]string, 0, hi-lo+1)
	for p := lo; p <= hi; p++ {
		out = append(out, strconv.Itoa(p)+"/"+proto)
	}
	return out, nil
}

// parsePort reads a decimal port number from 1 to 65535.
func parsePort(s string) (int, error) {
	if s == "" {
		return 0, errors.New("a port number is missing")
	}
	for _, c := range s {
		if c < '0' || c > '9' {
			return 0, fmt.Errorf("%q is not a port number", s)
		}
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 1 || n > 65535 {
		return 0, fmt.Errorf("%s is out of the range 1-65535", s)
	}
	return n, nil
}

// signalNames are the Linux signals by name, without the "SIG" prefix, as
// Docker's signal table has them; RTMIN+n and RTMAX-n are handled apart.
var signalNames = map[string]bool{
	"ABRT": true, "ALRM": true, "BUS": true, "CHLD": true, "CLD": true,
	"CONT": true, "FPE": true, "HUP": true, "ILL": true, "INT": true,
	"IO": true, "IOT": true, "KILL": true, "PIPE": true, "POLL": true,
	"PROF": true, "PWR": true, "QUIT": true, "SEGV": true, "STKFLT": true,
	"STOP": true, "SYS": true, "TERM": true, "TRAP": true, "TSTP": true,
	"TTIN": true, "TTOU": true, "UNUSED": true, "URG": true, "USR1": true,
	"USR2": true, "VTALRM": true, "WINCH": true, "XCPU": true, "XFSZ": true,
	"RTMIN": true, "RTMAX": true,
}

// CheckSignal accepts a signal name in any case with or without "SIG"
// ("SIGTERM", "term", "SIGRTMIN+3") or a number from 1 to 64. Errors quote
// s and wrap [ErrInvalidSignal].
func CheckSignal(s string) error {
	bad := fmt.Errorf("signal %q: %w: want a name such as SIGTERM or a number from 1 to %d", s, ErrInvalidSignal, maxSignal)
	if s == "" {
		return bad
	}
	if s[0] >= '0' && s[0] <= '9' {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > maxSignal {
			return bad
		}
		return nil
	}
	name := strings.TrimPrefix(strings.ToUpper(s), "SIG")
	if signalNames[name] {
		return nil
	}
	for _, rt := range []struct {
		prefix string
		max    int
	}{{"RTMIN+", 15}, {"RTMAX-", 14}} {
		if n, ok := strings.CutPrefix(name, rt.prefix); ok {
			if i, err := strconv.Atoi(n); err == nil && i >= 1 && i <= rt.max && strconv.Itoa(i) == n {
				return nil
			}
		}
	}
	return bad
}
