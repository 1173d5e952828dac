package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"text/tabwriter"
	"time"

	"github.com/golora/golora/jobs"
	"github.com/golora/golora/lora"
	"github.com/golora/golora/model"
)

// natsFlags are the flags of the commands that talk to NATS JetStream.
type natsFlags struct {
	url        string
	embedded   string
	replicas   int
	ackWait    time.Duration
	maxDeliver int
}

func (n *natsFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&n.url, "nats", os.Getenv("NATS_URL"), "NATS server URL(s), comma-separated for a cluster (default $NATS_URL)")
	fs.StringVar(&n.embedded, "nats-embedded", "", "run (or join) an in-process JetStream server storing in this directory instead of --nats")
	fs.IntVar(&n.replicas, "replicas", 1, "copies of the job stream and buckets (3 on a three-node cluster); set by workers, and by the first command if none ran yet")
	fs.DurationVar(&n.ackWait, "ack-wait", 30*time.Second, "how long a silent worker keeps a job before it goes to another; set as --replicas")
	fs.IntVar(&n.maxDeliver, "max-deliver", 5, "deliveries of a job before it ends as failed; set as --replicas")
}

// connect reaches NATS and sets the streams and buckets up: with setup
// (workers) as the flags say, otherwise only when they do not exist yet,
// so that listing or submitting never changes the workers' settings.
func (n *natsFlags) connect(ctx context.Context, name string, setup bool) (*jobs.Conn, *jobs.Client, error) {
	if (n.url == "") == (n.embedded == "") {
		return nil, nil, fmt.Errorf("give one of --nats URL (or $NATS_URL) and --nats-embedded DIR")
	}
	if n.embedded != "" {
		n.url = ""
	}
	conn, err := jobs.Connect(n.url, n.embedded, name)
	if err != nil {
		return nil, nil, err
	}
	var c *jobs.Client
	if !setup {
		c, err = jobs.Open(ctx, conn.Conn)
	}
	if setup || errors.Is(err, jobs.ErrNotSetUp) {
		c, err = jobs.Setup(ctx, conn.Conn, jobs.Options{Replicas: n.replicas, AckWait: n.ackWait, MaxDeliver: n.maxDeliver})
	}
	if err != nil {
		conn.Close()
		return nil, nil, err
	}
	return conn, c, nil
}

func runJobs(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("jobs", flag.ContinueOnError)
	var nf natsFlags
	nf.register(fs)
	asJSON := fs.Bool("json", false, "print JSON")
	adapters := fs.Bool("adapters", false, "list the adapters' latest versions instead of the jobs")
	verify := fs.Bool("verify", false, "download every adapter's latest version and load it for the embedded base; fail if any does not load, a job is not done, or a job is left in the queue")
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), `Usage: golora jobs (--nats URL | --nats-embedded DIR) [flags]

Lists the training jobs submitted with golora submit and their states
(queued, running with step and loss, done with the adapter version, failed
with the reason), or with --adapters the adapters' latest versions.

Flags:
`)
		fs.PrintDefaults()
	}
	if err := parseFlags(fs, args, stderr); err != nil {
		return err
	}
	conn, c, err := nf.connect(ctx, "golora jobs", false)
	if err != nil {
		return err
	}
	defer conn.Close()
	if *verify {
		return verifyJobs(ctx, c, stdout)
	}
	if *adapters {
		cache, err := os.MkdirTemp("", "golora-adapters-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(cache)
		list, err := c.Adapters(cache).List(ctx)
		if err != nil {
			return err
		}
		if *asJSON {
			return writeJSON(stdout, list)
		}
		tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "ADAPTER\tVERSION\tJOB\tBASE\tCREATED")
		for _, v := range list {
			fmt.Fprintf(tw, "%s\tv%d\t%s\t%s\t%s\n", v.Name, v.Version, v.Job, v.Base, v.Created.Format(time.RFC3339))
		}
		return tw.Flush()
	}
	list, err := c.List(ctx)
	if err != nil {
		return err
	}
	if *asJSON {
		return writeJSON(stdout, list)
	}
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "JOB\tADAPTER\tSTATE\tSTEP\tLOSS\tVERSION\tWORKER\tATTEMPTS\tERROR")
	for _, s := range list {
		// "-" for an empty field keeps the columns for awk.
		version, loss, worker, reason := "-", "-", "-", "-"
		if s.Version > 0 {
			version = fmt.Sprintf("v%d", s.Version)
		}
		if s.Step > 0 {
			loss = fmt.Sprintf("%.4f", s.Loss)
		}
		if s.Worker != "" {
			worker = s.Worker
		}
		if s.Error != "" {
			reason = s.Error
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d/%d\t%s\t%s\t%s\t%d\t%s\n", s.ID, s.Adapter, s.State, s.Step, s.Steps, loss, version, worker, s.Attempts, reason)
	}
	return tw.Flush()
}

// verifyJobs checks a finished batch of jobs: every job done, its version
// the adapter's only one from that job, every adapter loadable, the queue
// empty.
func verifyJobs(ctx context.Context, c *jobs.Client, stdout io.Writer) error {
	list, err := c.List(ctx)
	if err != nil {
		return err
	}
	ck, err := model.Default()
	if err != nil {
		return err
	}
	cache, err := os.MkdirTemp("", "golora-verify-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(cache)
	src := c.Adapters(cache)
	var problems []error
	versions := map[string]map[int]string{} // adapter → version → job
	for _, s := range list {
		if s.State != jobs.Done {
			problems = append(problems, fmt.Errorf("job %s (%s) is %s %s", s.ID, s.Adapter, s.State, s.Error))
			continue
		}
		if versions[s.Adapter] == nil {
			versions[s.Adapter] = map[int]string{}
		}
		if other, ok := versions[s.Adapter][s.Version]; ok {
			problems = append(problems, fmt.Errorf("jobs %s and %s both made %s v%d", other, s.ID, s.Adapter, s.Version))
		}
		versions[s.Adapter][s.Version] = s.ID
		dir, err := src.OpenVersion(ctx, s.Adapter, s.Version)
		if err == nil {
			_, err = lora.LoadFor(dir, ck.Weights)
		}
		if err != nil {
			problems = append(problems, fmt.Errorf("job %s: %w", s.ID, err))
		}
	}
	for name, vs := range versions {
		latest, err := src.Latest(ctx, name)
		if err != nil {
			problems = append(problems, err)
			continue
		}
		if latest.Version != len(vs) {
			problems = append(problems, fmt.Errorf("adapter %s: latest is v%d, %d jobs made versions", name, latest.Version, len(vs)))
		}
	}
	pending, err := c.Pending(ctx)
	if err != nil {
		return err
	}
	if pending != 0 {
		problems = append(problems, fmt.Errorf("%d jobs left in the queue", pending))
	}
	fmt.Fprintf(stdout, "%d jobs, %d adapters, %d left in the queue, %d problems\n", len(list), len(versions), pending, len(problems))
	for _, p := range problems {
		fmt.Fprintln(stdout, "  ", p)
	}
	if len(problems) > 0 {
		return errors.New("verification failed")
	}
	return nil
}
