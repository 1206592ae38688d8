package main

// The submitter's side of the tabgrid command: submit, jobs, status,
// cancel and result. Each talks to a coordinator through
// coordinator/client and nothing else, so these commands work against any
// coordinator or load balancer the user can reach.

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/mattn/go-isatty"
	"github.com/schollz/progressbar/v3"

	"github.com/tabgrid/tabgrid/coordinator/client"
	"github.com/tabgrid/tabgrid/tasks"
)

// Exit codes of the submitter commands.
const (
	exitOK    = 0
	exitFail  = 1 // the job failed or was cancelled, or the API answered an error
	exitUsage = 2
)

// pollEvery is how long one status request may be held by the server
// while the CLI waits for a job.
const pollEvery = time.Second

// runCLI runs one submitter command and returns its exit code. Results go
// to stdout; progress, messages and errors to stderr, so that
// `tabgrid submit ... > result.json` captures only the result.
func runCLI(ctx context.Context, cmd string, args []string, stdout, stderr io.Writer) int {
	c := &cli{name: "tabgrid " + cmd, stdout: stdout, stderr: stderr}
	switch cmd {
	case "submit":
		return c.submit(ctx, args)
	case "jobs":
		return c.jobs(ctx, args)
	case "status":
		return c.status(ctx, args)
	case "cancel":
		return c.cancel(ctx, args)
	case "result":
		return c.result(ctx, args)
	}
	fmt.Fprintf(stderr, "tabgrid: unknown command %q\n", cmd)
	return exitUsage
}

type cli struct {
	name           string
	stdout, stderr io.Writer
	server, token  string
}

// flags makes a flag set with the connection flags every command shares.
func (c *cli) flags(usage string) *flag.FlagSet {
	fs := flag.NewFlagSet(c.name, flag.ContinueOnError)
	fs.SetOutput(c.stderr)
	fs.StringVar(&c.server, "server", envOr("TABGRID_SERVER", client.DefaultServer), "coordinator URL (TABGRID_SERVER)")
	fs.StringVar(&c.token, "token", os.Getenv("TABGRID_TOKEN"), "API bearer token, needed by submit and cancel (TABGRID_TOKEN)")
	fs.Usage = func() {
		fmt.Fprintf(c.stderr, "Usage: %s %s\n\nFlags:\n", c.name, usage)
		fs.PrintDefaults()
	}
	return fs
}

// parse parses flags that may come before or after the positional
// arguments (`tabgrid status ID --server URL`), which flag.Parse alone
// does not allow. It returns the positionals, or an exit code when
// parsing ended the command.
func (c *cli) parse(fs *flag.FlagSet, args []string, positionals int) ([]string, int, bool) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				return nil, exitOK, false
			}
			return nil, exitUsage, false
		}
		args = fs.Args()
		if len(args) == 0 {
			break
		}
		pos = append(pos, args[0])
		args = args[1:]
	}
	if len(pos) != positionals {
		if positionals == 0 {
			fmt.Fprintf(c.stderr, "%s: unexpected argument %q\n", c.name, pos[0])
		} else {
			fmt.Fprintf(c.stderr, "%s: want %d argument(s), got %d\n", c.name, positionals, len(pos))
		}
		fmt.Fprintf(c.stderr, "Run '%s -h' for its usage.\n", c.name)
		return nil, exitUsage, false
	}
	return pos, 0, true
}

func (c *cli) client() *client.Client {
	return client.New(c.server, c.token, client.WithUserAgent("tabgrid-cli/1"))
}

// fail prints an error and returns the exit code for it.
func (c *cli) fail(err error) int {
	var apiErr *client.Error
	if errors.As(err, &apiErr) && apiErr.Status == 401 {
		fmt.Fprintf(c.stderr, "%s: %v (set --token or TABGRID_TOKEN)\n", c.name, err)
		return exitFail
	}
	fmt.Fprintf(c.stderr, "%s: %v\n", c.name, err)
	return exitFail
}

func (c *cli) usageError(fs *flag.FlagSet, format string, args ...any) int {
	fmt.Fprintf(c.stderr, "%s: %s\nRun '%s -h' for its flags.\n", c.name, fmt.Sprintf(format, args...), c.name)
	return exitUsage
}

func (c *cli) submit(ctx context.Context, args []string) int {
	fs := c.flags("--kind KIND (--input JSON | --input-file FILE) [flags]")
	var (
		spec        tasks.Spec
		input       = fs.String("input", "", `the job input as JSON, e.g. '{"from":0,"to":1000000}'`)
		inputFile   = fs.String("input-file", "", "read the job input from this JSON file (- for stdin)")
		split       = fs.Int("split", 0, "number of tasks (0 = the kind's default)")
		taskTimeout = fs.Duration("task-timeout", 0, "retry a task elsewhere after this long (0 = server default, 60s)")
		noWait      = fs.Bool("no-wait", false, "print the job and return without waiting for it")
		out         = fs.String("out", "", "mandelbrot: write the PNG image to this file")
		idemKey     = fs.String("idempotency-key", "", "a retried submission with the same key returns the first job")
	)
	fs.StringVar(&spec.Kind, "kind", "", "kind of work: "+strings.Join(tasks.KindNames(), ", "))
	fs.StringVar(&spec.Name, "name", "", "a label for the job")
	fs.IntVar(&spec.Priority, "priority", 0, "higher runs first")
	fs.IntVar(&spec.MaxAttempts, "max-attempts", 0, "failures a task may have before the job fails (0 = server default, 3)")
	if _, code, ok := c.parse(fs, args, 0); !ok {
		return code
	}
	if spec.Kind == "" {
		return c.usageError(fs, "--kind is required")
	}
	raw, err := readInput(*input, *inputFile, os.Stdin)
	if err != nil {
		return c.usageError(fs, "%v", err)
	}
	spec.Input = raw
	if *split < 0 {
		return c.usageError(fs, "--split must not be negative")
	}
	if *split > 0 {
		spec.Split = &tasks.SplitHint{Tasks: *split}
	}
	if *taskTimeout < 0 {
		return c.usageError(fs, "--task-timeout must not be negative")
	}
	spec.TaskTimeout = tasks.Duration(*taskTimeout)
	if *out != "" && *noWait {
		return c.usageError(fs, "--out needs the result: drop --no-wait, or use `tabgrid result ID --out FILE` later")
	}

	cl := c.client()
	job, err := cl.Submit(ctx, spec, client.SubmitOptions{IdempotencyKey: *idemKey})
	if err != nil {
		return c.fail(err)
	}
	if *noWait {
		return c.printJSON(job)
	}
	fmt.Fprintf(c.stderr, "job %s submitted: %s, %d tasks\n", job.ID, job.Kind, job.Tasks.Total)

	rep := newReporter(c.stderr, job)
	job, err = cl.Wait(ctx, job.ID, pollEvery, rep.update)
	rep.done()
	if err != nil {
		if ctx.Err() != nil {
			fmt.Fprintf(c.stderr, "%s: stopped waiting; job %s goes on (tabgrid status %s, tabgrid cancel %s)\n", c.name, job.ID, job.ID, job.ID)
			return exitFail
		}
		return c.fail(err)
	}
	return c.finish(ctx, cl, job, *out)
}

// finish reports a final job: the result on stdout (and the image in out),
// or the reason it did not succeed.
func (c *cli) finish(ctx context.Context, cl *client.Client, job tasks.Job, out string) int {
	if job.State != tasks.JobSucceeded {
		msg := job.Error
		if msg == "" {
			msg = "no error recorded"
		}
		fmt.Fprintf(c.stderr, "%s: job %s %s: %s\n", c.name, job.ID, job.State, msg)
		return exitFail
	}
	if code := c.printJSON(job.Result); code != exitOK {
		return code
	}
	if out != "" {
		return c.writePNG(ctx, cl, job.ID, out)
	}
	return exitOK
}

func (c *cli) writePNG(ctx context.Context, cl *client.Client, id, out string) int {
	png, err := cl.ResultPNG(ctx, id)
	if err != nil {
		return c.fail(err)
	}
	if err := os.WriteFile(out, png, 0o644); err != nil {
		return c.fail(fmt.Errorf("write image: %w", err))
	}
	fmt.Fprintf(c.stderr, "wrote %s (%d bytes)\n", out, len(png))
	return exitOK
}

// readInput takes the job input from exactly one of the flag and the
// file, and checks that it is JSON so that a shell quoting mistake is a
// usage error here rather than a 400 from the server.
func readInput(input, file string, stdin io.Reader) (json.RawMessage, error) {
	var raw []byte
	switch {
	case input != "" && file != "":
		return nil, errors.New("give --input or --input-file, not both")
	case input != "":
		raw = []byte(input)
	case file == "-":
		b, err := io.ReadAll(stdin)
		if err != nil {
			return nil, fmt.Errorf("read input from stdin: %w", err)
		}
		raw = b
	case file != "":
		b, err := os.ReadFile(file)
		if err != nil {
			return nil, fmt.Errorf("read input: %w", err)
		}
		raw = b
	default:
		return nil, errors.New("--input or --input-file is required")
	}
	raw = bytes.TrimSpace(raw)
	if !json.Valid(raw) {
		return nil, errors.New("the input is not valid JSON")
	}
	return json.RawMessage(raw), nil
}

func (c *cli) jobs(ctx context.Context, args []string) int {
	fs := c.flags("[--state STATE] [--limit N] [--json]")
	state := fs.String("state", "", "only jobs in this state: queued, running, succeeded, failed, cancelled")
	limit := fs.Int("limit", 50, "at most this many jobs, newest first (1..1000)")
	asJSON := fs.Bool("json", false, "print JSON instead of a table")
	if _, code, ok := c.parse(fs, args, 0); !ok {
		return code
	}
	if *state != "" && !tasks.JobState(*state).Valid() {
		return c.usageError(fs, "unknown state %q", *state)
	}
	if *limit < 1 || *limit > 1000 {
		return c.usageError(fs, "--limit must be between 1 and 1000")
	}
	jobs, err := c.client().Jobs(ctx, tasks.JobState(*state), *limit)
	if err != nil {
		return c.fail(err)
	}
	if *asJSON {
		if jobs == nil {
			jobs = []tasks.Job{}
		}
		return c.printJSON(map[string]any{"jobs": jobs})
	}
	tw := tabwriter.NewWriter(c.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tNAME\tKIND\tSTATE\tPROGRESS\tTASKS\tCREATED\tERROR")
	for _, j := range jobs {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%.0f%%\t%d/%d\t%s\t%s\n",
			j.ID, clip(j.Name, 30), j.Kind, j.State, j.Progress*100, j.Tasks.Succeeded, j.Tasks.Total,
			j.CreatedAt.Local().Format("2006-01-02 15:04:05"), clip(j.Error, 60))
	}
	if err := tw.Flush(); err != nil {
		return c.fail(err)
	}
	return exitOK
}

func (c *cli) status(ctx context.Context, args []string) int {
	fs := c.flags("ID [--wait DURATION]")
	wait := fs.Duration("wait", 0, "answer as soon as the job ends or this much time passes")
	pos, code, ok := c.parse(fs, args, 1)
	if !ok {
		return code
	}
	job, err := c.client().Job(ctx, pos[0], *wait)
	if err != nil {
		return c.fail(err)
	}
	return c.printJSON(job)
}

func (c *cli) cancel(ctx context.Context, args []string) int {
	fs := c.flags("ID")
	pos, code, ok := c.parse(fs, args, 1)
	if !ok {
		return code
	}
	job, err := c.client().Cancel(ctx, pos[0])
	if err != nil {
		return c.fail(err)
	}
	return c.printJSON(job)
}

func (c *cli) result(ctx context.Context, args []string) int {
	fs := c.flags("ID [--out FILE.png]")
	out := fs.String("out", "", "mandelbrot: write the PNG image to this file")
	pos, code, ok := c.parse(fs, args, 1)
	if !ok {
		return code
	}
	cl := c.client()
	res, err := cl.Result(ctx, pos[0])
	if err != nil {
		var apiErr *client.Error
		if errors.As(err, &apiErr) && apiErr.State != "" {
			fmt.Fprintf(c.stderr, "%s: job %s is %s, it has no result\n", c.name, pos[0], apiErr.State)
			return exitFail
		}
		return c.fail(err)
	}
	if code := c.printJSON(res); code != exitOK {
		return code
	}
	if *out != "" {
		return c.writePNG(ctx, cl, pos[0], *out)
	}
	return exitOK
}

// printJSON writes v as indented JSON to stdout.
func (c *cli) printJSON(v any) int {
	var b []byte
	var err error
	if raw, ok := v.(json.RawMessage); ok {
		var buf bytes.Buffer
		err = json.Indent(&buf, raw, "", "  ")
		b = buf.Bytes()
	} else {
		b, err = json.MarshalIndent(v, "", "  ")
	}
	if err != nil {
		return c.fail(fmt.Errorf("encode output: %w", err))
	}
	if _, err := fmt.Fprintf(c.stdout, "%s\n", b); err != nil {
		return c.fail(err)
	}
	return exitOK
}

// reporter shows a job's progress while the CLI waits: a bar on a
// terminal, a plain line per change anywhere else (CI logs, files).
type reporter struct {
	w    io.Writer
	id   string
	bar  *progressbar.ProgressBar
	last string
}

// isTerminal reports whether w is a terminal; a variable so that tests
// can draw the bar into a buffer.
var isTerminal = func(w io.Writer) bool {
	f, ok := w.(*os.File)
	return ok && (isatty.IsTerminal(f.Fd()) || isatty.IsCygwinTerminal(f.Fd()))
}

func newReporter(w io.Writer, job tasks.Job) *reporter {
	r := &reporter{w: w, id: job.ID}
	if isTerminal(w) && job.Tasks.Total > 0 {
		r.bar = progressbar.NewOptions(job.Tasks.Total,
			progressbar.OptionSetWriter(w),
			progressbar.OptionSetDescription(job.Kind+" "+job.ID),
			progressbar.OptionShowCount(),
			progressbar.OptionSetItsString("tasks"),
			progressbar.OptionShowIts(),
			progressbar.OptionSetPredictTime(true),
			progressbar.OptionSetWidth(30),
			progressbar.OptionThrottle(100*time.Millisecond),
			// Drawn at once, so a job that ends before the first poll
			// still shows its bar.
			progressbar.OptionSetRenderBlankState(true),
		)
	}
	return r
}

func (r *reporter) update(job tasks.Job) {
	if r.bar != nil {
		if job.Tasks.Total > 0 && job.Tasks.Total != r.bar.GetMax() {
			r.bar.ChangeMax(job.Tasks.Total)
		}
		r.bar.Set(job.Tasks.Succeeded)
		return
	}
	line := fmt.Sprintf("job %s %s: %d/%d tasks done (%.0f%%), %d running, %d failed",
		job.ID, job.State, job.Tasks.Succeeded, job.Tasks.Total, job.Progress*100, job.Tasks.Running, job.Tasks.Failed)
	if line != r.last {
		fmt.Fprintln(r.w, line)
		r.last = line
	}
}

// done ends the bar's line so that what follows starts on a new one.
func (r *reporter) done() {
	if r.bar != nil {
		r.bar.Exit()
		fmt.Fprintln(r.w)
	}
}

func envOr(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}

func clip(s string, n int) string {
	s = strings.ReplaceAll(s, "\n", " ")
	if len(s) <= n {
		return s
	}
	return s[:n-1] + "…"
}
