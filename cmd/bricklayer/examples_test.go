package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"strings"
	"testing"

	"github.com/spf13/cobra"
)

// TestHelpExamples runs every bricklayer command line that the help's
// examples and the README's shell blocks show, against a store that cannot be opened: each must get past
// its flags and arguments to the point where it opens the store, so no
// example is a command line error (an unknown flag, a refused combination).
func TestHelpExamples(t *testing.T) {
	t.Setenv("BRICKLAYER_ROOT", "/dev/null/store")
	var cmds []*cobra.Command
	var walk func(c *cobra.Command)
	walk = func(c *cobra.Command) {
		cmds = append(cmds, c)
		for _, sub := range c.Commands() {
			walk(sub)
		}
	}
	walk(newApp().rootCommand())
	examples := map[string]string{}
	for _, c := range cmds {
		examples[c.CommandPath()] = c.Example
	}
	// The README's shell blocks too.
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	for i, block := range strings.Split(string(readme), "```sh\n")[1:] {
		block, _, _ = strings.Cut(block, "```")
		examples[fmt.Sprintf("README.md's shell block %d", i+1)] = block
	}
	n := 0
	for where, example := range examples {
		for _, line := range strings.Split(example, "\n") {
			for _, inv := range exampleInvocations(line) {
				n++
				args := inv.args
				for _, kv := range inv.env {
					k, v, _ := strings.Cut(kv, "=")
					t.Setenv(k, v)
				}
				var stdout, stderr bytes.Buffer
				code := run(context.Background(), args, &stdout, &stderr)
				for _, kv := range inv.env {
					k, _, _ := strings.Cut(kv, "=")
					os.Unsetenv(k)
				}
				if code != exitFailure || !strings.Contains(stderr.String(), "opening the store at /dev/null/store") {
					t.Errorf("example %q in %s: exit %d, stderr %q; want it to fail opening the store", strings.Join(args, " "), where, code, stderr.String())
				}
			}
		}
	}
	t.Logf("%d command lines from %d places", n, len(examples))
	if n < 10 {
		t.Errorf("found %d example command lines, want more", n)
	}
}

// invocation is one bricklayer command of a shell line: the variables set
// for it (NAME=VALUE) and its arguments.
type invocation struct {
	env  []string
	args []string
}

// exampleInvocations returns each bricklayer command on a shell line: the
// NAME=VALUE words right before "bricklayer", and the words after it up to
// the end of the line or an unquoted |, &, ), ; or #. Quotes are removed;
// nothing is expanded.
func exampleInvocations(line string) []invocation {
	var out []invocation
	for rest := line; ; {
		i := strings.Index(rest, "bricklayer ")
		if i < 0 {
			return out
		}
		var env []string
		before := strings.Fields(rest[:i])
		for k := len(before) - 1; k >= 0 && strings.Contains(before[k], "=") && !strings.ContainsAny(before[k], "$()"); k-- {
			env = append(env, before[k])
		}
		rest = rest[i+len("bricklayer "):]
		var args []string
		var word strings.Builder
		inWord := false
		var quote byte
		j := 0
	scan:
		for ; j < len(rest); j++ {
			ch := rest[j]
			switch {
			case quote != 0:
				if ch == quote {
					quote = 0
				} else {
					word.WriteByte(ch)
				}
			case ch == '\'' || ch == '"':
				quote, inWord = ch, true
			case strings.IndexByte("|&);#", ch) >= 0:
				break scan
			case ch == ' ' || ch == '\t':
				if inWord {
					args = append(args, word.String())
					word.Reset()
					inWord = false
				}
			default:
				word.WriteByte(ch)
				inWord = true
			}
		}
		if inWord {
			args = append(args, word.String())
		}
		out = append(out, invocation{env: env, args: args})
		rest = rest[j:]
	}
}
