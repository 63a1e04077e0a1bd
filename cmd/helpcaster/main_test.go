package main

import (
	"bytes"
	"strings"
	"testing"
)

func TestRunCommands(t *testing.T) {
	tests := []struct {
		args       []string
		code       int
		stdoutHas  string
		stderrHas  string
		stdoutNone bool
	}{
		{[]string{"version"}, 0, "helpcaster ", "", false},
		{[]string{"help"}, 0, "Commands:", "", false},
		{[]string{"--help"}, 0, "Commands:", "", false},
		{[]string{"help", "token"}, 0, "--secret-env", "", false},
		{[]string{"token", "--help"}, 0, "", "--secret-env", true},
		{nil, 2, "", "Usage:", true},
		{[]string{"frobnicate"}, 2, "", `unknown command "frobnicate"`, true},
		{[]string{"help", "frobnicate"}, 2, "", `unknown command "frobnicate"`, true},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			if code := run(tt.args, envFunc(nil), &stdout, &stderr); code != tt.code {
				t.Fatalf("exit code %d; want %d", code, tt.code)
			}
			if !strings.Contains(stdout.String(), tt.stdoutHas) || !strings.Contains(stderr.String(), tt.stderrHas) {
				t.Errorf("stdout %q stderr %q", stdout.String(), stderr.String())
			}
			if tt.stdoutNone && stdout.Len() != 0 {
				t.Errorf("stdout %q; want nothing", stdout.String())
			}
		})
	}
}
