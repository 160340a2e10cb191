// goose-provider runs goose's library Provider against PostgreSQL with goose's session
// advisory lock, the way a goose-based deployment migrates (the goose CLI takes no lock).
// The interoperability tests and the benchmarks drive it beside the migrator.
//
//	goose-provider -dsn DSN -dir DIR [-table T] [-allow-missing] [-json]
//	               [-lock-poll SECONDS] [-lock-attempts N] COMMAND [VERSION]
//
// Commands: up, up-by-one, up-to V, down, down-to V, status, version; and envsub, which
// needs no database: it reads a JSON array of lines on stdin and expands each as goose's
// parser expands a line under "-- +goose ENVSUB ON", printing one {"expanded"} or
// {"error"} object per line as a JSON array.
// Exit codes: 0 done, 1 a migration, the lock or the database failed, 2 usage.
package main

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"strconv"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib"
	"github.com/mfridman/interpolate"
	"github.com/pressly/goose/v3"
	"github.com/pressly/goose/v3/database"
	"github.com/pressly/goose/v3/lock"
)

type options struct {
	dsn, dir, table      string
	allowMissing, asJSON bool
	lockPoll, lockTries  uint64
}

// result is one applied or rolled-back file, as the tests compare it with the migrator's.
type result struct {
	Version   int64   `json:"version"`
	Path      string  `json:"path"`
	Direction string  `json:"direction"`
	Empty     bool    `json:"empty"`
	Seconds   float64 `json:"seconds"`
	Error     string  `json:"error,omitempty"`
}

type migrationState struct {
	Version   int64   `json:"version"`
	Path      string  `json:"path"`
	Applied   bool    `json:"applied"`
	AppliedAt *string `json:"applied_at"`
}

func main() {
	os.Exit(run(os.Args[1:]))
}

func run(args []string) int {
	var opts options
	flags := flag.NewFlagSet("goose-provider", flag.ContinueOnError)
	flags.StringVar(&opts.dsn, "dsn", os.Getenv("GOOSE_DBSTRING"), "database URL or key=value DSN (env GOOSE_DBSTRING)")
	flags.StringVar(&opts.dir, "dir", "migrations", "migrations directory")
	flags.StringVar(&opts.table, "table", "_migrations", "version table")
	flags.BoolVar(&opts.allowMissing, "allow-missing", false, "apply pending files older than the current version")
	flags.BoolVar(&opts.asJSON, "json", false, "print one JSON document")
	// goose's own defaults: poll every 5s, 60 times.
	flags.Uint64Var(&opts.lockPoll, "lock-poll", 5, "seconds between pg_try_advisory_lock polls")
	flags.Uint64Var(&opts.lockTries, "lock-attempts", 60, "polls before giving up on the lock")
	if err := flags.Parse(args); err != nil {
		return 2
	}
	rest := flags.Args()
	if len(rest) == 0 {
		fmt.Fprintln(os.Stderr, "goose-provider: a command is required")
		return 2
	}
	command, rest := rest[0], rest[1:]
	if command == "envsub" {
		return envsub()
	}
	var target int64
	if command == "up-to" || command == "down-to" {
		if len(rest) != 1 {
			fmt.Fprintf(os.Stderr, "goose-provider: %s takes VERSION\n", command)
			return 2
		}
		parsed, err := strconv.ParseInt(rest[0], 10, 64)
		if err != nil {
			fmt.Fprintf(os.Stderr, "goose-provider: VERSION: %v\n", err)
			return 2
		}
		target = parsed
	} else if len(rest) != 0 {
		fmt.Fprintf(os.Stderr, "goose-provider: %s takes no argument\n", command)
		return 2
	}

	provider, err := open(opts)
	if err != nil {
		fmt.Fprintf(os.Stderr, "goose-provider: %v\n", err)
		return 1
	}
	defer provider.Close() // closes the database too

	ctx := context.Background()
	var document any
	switch command {
	case "status":
		document, err = status(ctx, provider)
	case "version":
		var current int64
		current, err = provider.GetDBVersion(ctx)
		document = map[string]int64{"version": current}
	case "up", "up-by-one", "up-to", "down", "down-to":
		var results []*goose.MigrationResult
		results, err = migrate(ctx, provider, command, target)
		document = convert(results)
		if err != nil {
			var partial *goose.PartialError
			if errors.As(err, &partial) {
				document = convert(append(partial.Applied, partial.Failed))
			}
		}
	default:
		fmt.Fprintf(os.Stderr, "goose-provider: unknown command %q\n", command)
		return 2
	}
	emit(opts.asJSON, document)
	if err != nil {
		fmt.Fprintf(os.Stderr, "goose-provider: %s: %v\n", command, err)
		return 1
	}
	return 0
}

func open(opts options) (*goose.Provider, error) {
	db, err := sql.Open("pgx", opts.dsn)
	if err != nil {
		return nil, err
	}
	providerOptions := []goose.ProviderOption{
		goose.WithTableName(opts.table),
		goose.WithAllowOutofOrder(opts.allowMissing),
	}
	locker, err := lock.NewPostgresSessionLocker(lock.WithLockTimeout(opts.lockPoll, opts.lockTries))
	if err != nil {
		db.Close()
		return nil, err
	}
	providerOptions = append(providerOptions, goose.WithSessionLocker(locker))
	provider, err := goose.NewProvider(database.DialectPostgres, db, os.DirFS(opts.dir), providerOptions...)
	if err != nil {
		db.Close()
		return nil, err
	}
	return provider, nil
}

func migrate(ctx context.Context, p *goose.Provider, command string, target int64) ([]*goose.MigrationResult, error) {
	one := func(r *goose.MigrationResult, err error) ([]*goose.MigrationResult, error) {
		if r == nil {
			return nil, err
		}
		return []*goose.MigrationResult{r}, err
	}
	switch command {
	case "up":
		return p.Up(ctx)
	case "up-by-one":
		return one(p.UpByOne(ctx))
	case "up-to":
		return p.UpTo(ctx, target)
	case "down":
		return one(p.Down(ctx))
	default: // down-to
		return p.DownTo(ctx, target)
	}
}

func status(ctx context.Context, p *goose.Provider) (map[string]any, error) {
	states, err := p.Status(ctx)
	if err != nil {
		return nil, err
	}
	current, err := p.GetDBVersion(ctx)
	if err != nil {
		return nil, err
	}
	migrations := make([]migrationState, 0, len(states))
	for _, s := range states {
		state := migrationState{Version: s.Source.Version, Path: s.Source.Path, Applied: s.State == goose.StateApplied}
		if state.Applied {
			at := s.AppliedAt.UTC().Format(time.RFC3339Nano)
			state.AppliedAt = &at
		}
		migrations = append(migrations, state)
	}
	return map[string]any{"current": current, "migrations": migrations}, nil
}

func convert(results []*goose.MigrationResult) []result {
	converted := make([]result, 0, len(results))
	for _, r := range results {
		if r == nil {
			continue
		}
		entry := result{Direction: r.Direction, Empty: r.Empty, Seconds: r.Duration.Seconds()}
		if r.Source != nil {
			entry.Version, entry.Path = r.Source.Version, r.Source.Path
		}
		if r.Error != nil {
			entry.Error = r.Error.Error()
		}
		converted = append(converted, entry)
	}
	return converted
}

func emit(asJSON bool, document any) {
	if asJSON {
		encoded, _ := json.MarshalIndent(document, "", "  ")
		fmt.Println(string(encoded))
		return
	}
	switch value := document.(type) {
	case []result:
		for _, r := range value {
			label := "OK"
			if r.Error != "" {
				label = "FAILED"
			} else if r.Empty {
				label = "EMPTY"
			}
			fmt.Printf("%s %s %s (%.2fms)\n", label, r.Direction, r.Path, r.Seconds*1000)
		}
	case map[string]int64:
		fmt.Printf("goose-provider: version %d\n", value["version"])
	case map[string]any:
		for _, m := range value["migrations"].([]migrationState) {
			at := "Pending"
			if m.AppliedAt != nil {
				at = *m.AppliedAt
			}
			fmt.Printf("%-32s -- %s\n", at, m.Path)
		}
	}
}

// processEnv looks variables up as goose's parser does (its envWrapper): os.LookupEnv, so
// a variable set to "" is set.
type processEnv struct{}

func (processEnv) Get(key string) (string, bool) { return os.LookupEnv(key) }

type expansion struct {
	Expanded *string `json:"expanded,omitempty"`
	Error    string  `json:"error,omitempty"`
}

func envsub() int {
	var lines []string
	if err := json.NewDecoder(os.Stdin).Decode(&lines); err != nil {
		fmt.Fprintf(os.Stderr, "goose-provider: envsub: stdin is not a JSON array of strings: %v\n", err)
		return 2
	}
	expansions := make([]expansion, 0, len(lines))
	for _, line := range lines {
		expanded, err := interpolate.Interpolate(processEnv{}, line)
		if err != nil {
			expansions = append(expansions, expansion{Error: err.Error()})
			continue
		}
		expansions = append(expansions, expansion{Expanded: &expanded})
	}
	encoded, err := json.Marshal(expansions)
	if err != nil {
		fmt.Fprintf(os.Stderr, "goose-provider: envsub: %v\n", err)
		return 1
	}
	fmt.Println(string(encoded))
	return 0
}
