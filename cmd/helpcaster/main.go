// Command helpcaster is the HelpCaster server and its tools.
//
//	helpcaster serve    run the server
//	helpcaster bench    run a load scenario against a deployment
//	helpcaster token    mint a token for testing
//	helpcaster version  print the version
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"
)

func main() { os.Exit(run(os.Args[1:], os.Getenv, os.Stdout, os.Stderr)) }

const usage = `Usage: helpcaster <command> [flags]

Commands:
  serve     run the HelpCaster server
  bench     run a load scenario against a deployment and report
  token     mint a token for testing (as an organization backend would)
  version   print the version
  help      show help for a command: helpcaster help serve

Run 'helpcaster <command> --help' for the flags of a command.
`

// run executes the command line args and returns the exit status: 0 on
// success, 1 when the server fails, 2 for usage and configuration errors.
func run(args []string, env func(string) string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	switch cmd := args[0]; cmd {
	case "serve":
		return serveCommand(args[1:], env, stdout, stderr)
	case "token":
		return runToken(args[1:], env, stdout, stderr)
	case "bench":
		return runBench(args[1:], env, stdout, stderr)
	case "version", "-version", "--version":
		fmt.Fprintln(stdout, versionString())
		return 0
	case "help", "-h", "-help", "--help":
		if len(args) > 1 {
			switch args[1] {
			case "serve":
				_, _ = loadServeConfig([]string{"--help"}, env, stdout)
				return 0
			case "token":
				return runToken([]string{"--help"}, env, stdout, stdout)
			case "bench":
				return runBench([]string{"support", "--help"}, env, stdout, stdout)
			case "version", "help":
			default:
				fmt.Fprintf(stderr, "helpcaster: unknown command %q; run 'helpcaster help'\n", args[1])
				return 2
			}
		}
		fmt.Fprint(stdout, usage)
		return 0
	default:
		fmt.Fprintf(stderr, "helpcaster: unknown command %q; run 'helpcaster help'\n", cmd)
		return 2
	}
}

func serveCommand(args []string, env func(string) string, stdout, stderr io.Writer) int {
	cfg, err := loadServeConfig(args, env, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if err != nil {
		fmt.Fprintf(stderr, "helpcaster: %s\n", oneLine(err))
		return 2
	}
	logger := newLogger(cfg, stderr)
	// Two signals matter: the first starts the drain, the second ends it.
	// After the second, signals are no longer caught: a third kills.
	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)
	defer signal.Stop(sigs)
	stop := make(chan struct{}, 2)
	relayed := make(chan struct{})
	defer close(relayed)
	go func() {
		for range 2 {
			select {
			case <-sigs:
				stop <- struct{}{}
			case <-relayed:
				return
			}
		}
		signal.Stop(sigs)
	}()
	if err := runServe(stop, cfg, logger, stdout); err != nil {
		fmt.Fprintf(stderr, "helpcaster: %s\n", oneLine(err))
		return 1
	}
	return 0
}

// newLogger builds the logger selected by --log-format and --log-level.
func newLogger(cfg *Config, w io.Writer) *slog.Logger {
	opts := &slog.HandlerOptions{Level: cfg.LogLevel}
	if cfg.LogFormat == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}

// oneLine flattens an error message to a single line.
func oneLine(err error) string {
	return strings.Join(strings.Fields(strings.ReplaceAll(err.Error(), "\n", " ")), " ")
}
