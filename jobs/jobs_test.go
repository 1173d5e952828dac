package jobs

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/stretchr/testify/require"

	"github.com/golora/golora/lora"
	"github.com/golora/golora/train"
)

// startServer runs an embedded JetStream server on a free loopback port,
// storing in a temporary directory, for the test's duration.
func startServer(t testing.TB) *EmbeddedServer {
	t.Helper()
	srv, err := StartEmbedded(t.TempDir(), 0)
	require.NoError(t, err)
	t.Cleanup(srv.Close)
	return srv
}

// connect opens a connection to srv and a Client on it.
func connect(t testing.TB, srv *EmbeddedServer, opts Options) (*nats.Conn, *Client) {
	t.Helper()
	nc, err := nats.Connect(srv.URL())
	require.NoError(t, err)
	t.Cleanup(nc.Close)
	c, err := Setup(context.Background(), nc, opts)
	require.NoError(t, err)
	return nc, c
}

// testData is the first n examples of the quickstart's training data.
func testData(t testing.TB, n int) []byte {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("..", "examples", "quickstart", "data", "train.jsonl"))
	require.NoError(t, err)
	lines := strings.SplitAfter(string(data), "\n")
	return []byte(strings.Join(lines[:n], ""))
}

// testJob is a small QLoRA job on the embedded base: steps steps of 2 × 32
// tokens, a checkpoint every 2 steps.
func testJob(name string, steps int) Job {
	lcfg := lora.DefaultConfig()
	lcfg.R, lcfg.Alpha, lcfg.Dropout = 4, 8, 0.05
	lcfg.TargetModules = lora.ModuleRegex(lora.AllLinear)
	ts := DefaultTrainSettings()
	ts.Steps, ts.BatchSize, ts.SeqLen, ts.LR, ts.Seed, ts.CheckpointEvery = steps, 2, 32, 1e-3, 7, 2
	ts.EvalSplit = 0.1
	return Job{Adapter: name, Base: EmbeddedBase, LoRA: lcfg, Train: ts}
}

// trainDirect trains job on data with package train alone, as golora train
// does, and returns the adapter's weights file: what a job must produce.
func trainDirect(t testing.TB, job Job, data []byte) []byte {
	t.Helper()
	return trainDirectOn(t, &Worker{}, job, data)
}

// trainDirectOn is trainDirect with the bases w has loaded.
func trainDirectOn(t testing.TB, w *Worker, job Job, data []byte) []byte {
	t.Helper()
	w.init()
	base, err := w.base(context.Background(), job.Base, job.Quantize)
	require.NoError(t, err)
	examples, err := train.ReadJSONL(bytes.NewReader(data), "data", base.tok, base.w.Config.VocabSize, 0)
	require.NoError(t, err)
	var evalSet []train.Example
	if job.Train.EvalSplit > 0 {
		examples, evalSet, err = train.Split(examples, job.Train.EvalSplit, job.Train.Seed)
		require.NoError(t, err)
	}
	lcfg := job.LoRA
	lcfg.BaseModelNameOrPath = job.Base
	a, err := lora.New(base.w, lcfg, job.Train.Seed)
	require.NoError(t, err)
	out := t.TempDir()
	cfg := job.Train.config(out, 0)
	cfg.CheckpointEvery = 0
	_, err = train.Train(context.Background(), base.w, a, examples, evalSet, cfg)
	require.NoError(t, err)
	weights, err := os.ReadFile(filepath.Join(out, lora.WeightsFile))
	require.NoError(t, err)
	return weights
}

func adapterWeights(t testing.TB, c *Client, name string, version int) []byte {
	t.Helper()
	dir, err := c.Adapters(t.TempDir()).OpenVersion(context.Background(), name, version)
	require.NoError(t, err)
	b, err := os.ReadFile(filepath.Join(dir, lora.WeightsFile))
	require.NoError(t, err)
	return b
}

// runDone runs one delivery on w (waiting up to wait for a job), requires
// that a job ran, and that job id ended done; it returns the job's state.
// missing is the failure message when no job came.
func runDone(t testing.TB, c *Client, w *Worker, id string, wait time.Duration, missing string) Status {
	t.Helper()
	ctx := context.Background()
	ok, err := w.RunOne(ctx, wait)
	require.NoError(t, err)
	require.True(t, ok, missing)
	st, err := c.Status(ctx, id)
	require.NoError(t, err)
	require.Equal(t, Done, st.State, st.Error)
	return st
}

// TestJobLifecycle submits two jobs for one adapter name and runs them:
// queued → done, versions 1 and 2, the name pointing to the latest, the
// first version unchanged, the queue empty, and the adapter the same bytes
// as training directly with package train.
func TestJobLifecycle(t *testing.T) {
	ctx := context.Background()
	srv := startServer(t)
	_, c := connect(t, srv, Options{})
	data := testData(t, 40)
	job := testJob("acme", 4)

	sub, err := c.Submit(ctx, job, data)
	require.NoError(t, err)
	st, err := c.Status(ctx, sub.ID)
	require.NoError(t, err)
	require.Equal(t, Queued, st.State)
	require.Equal(t, 4, st.Steps)
	n, err := c.Pending(ctx)
	require.NoError(t, err)
	require.EqualValues(t, 1, n)

	w := &Worker{Client: c, Name: "w1"}
	st = runDone(t, c, w, sub.ID, 5*time.Second, "")
	require.Equal(t, 1, st.Version)
	require.Equal(t, 4, st.Step)
	require.Equal(t, "w1", st.Worker)
	require.Equal(t, 1, st.Attempts)
	n, err = c.Pending(ctx)
	require.NoError(t, err)
	require.Zero(t, n)

	want := trainDirect(t, job, data)
	v1 := adapterWeights(t, c, "acme", 1)
	require.True(t, bytes.Equal(want, v1), "the job's adapter differs from training directly")

	// A second job with another seed makes version 2; version 1 stays.
	job2 := job
	job2.Train.Seed = 8
	sub2, err := c.Submit(ctx, job2, data)
	require.NoError(t, err)
	st = runDone(t, c, w, sub2.ID, 5*time.Second, "")
	require.Equal(t, 2, st.Version)

	src := c.Adapters(t.TempDir())
	dir, v, err := src.Open(ctx, "acme")
	require.NoError(t, err)
	require.Equal(t, 2, v.Version)
	require.Equal(t, sub2.ID, v.Job)
	base, err := w.base(ctx, EmbeddedBase, "")
	require.NoError(t, err)
	_, err = lora.LoadFor(dir, base.w)
	require.NoError(t, err)
	require.True(t, bytes.Equal(v1, adapterWeights(t, c, "acme", 1)), "version 1 changed")
	require.False(t, bytes.Equal(v1, adapterWeights(t, c, "acme", 2)), "another seed gave the same adapter")

	all, err := c.List(ctx)
	require.NoError(t, err)
	require.Len(t, all, 2)
	require.Equal(t, sub.ID, all[0].ID)

	_, _, err = src.Open(ctx, "nobody")
	require.ErrorIs(t, err, ErrNoAdapter)
}

// TestRedeliveryResumes kills a worker (its connection closed, nothing
// acknowledged) after its second checkpoint upload; the job goes to a second
// worker after AckWait, which resumes from the uploaded checkpoint. The
// adapter must be bit-identical to training without interruption.
func TestRedeliveryResumes(t *testing.T) {
	ctx := context.Background()
	srv := startServer(t)
	opts := Options{AckWait: time.Second}
	nc1, c1 := connect(t, srv, opts)
	_, c2 := connect(t, srv, opts)
	data := testData(t, 40)
	job := testJob("resumed", 10)
	sub, err := c2.Submit(ctx, job, data)
	require.NoError(t, err)

	ctx1, kill := context.WithCancel(ctx)
	defer kill()
	w1 := &Worker{Client: c1, Name: "dies", WorkDir: t.TempDir()}
	w1.afterUpload = func(step int) {
		if step >= 4 {
			nc1.Close() // gone without a word: no ack, no nak, no last upload
			kill()
		}
	}
	ok, err := w1.RunOne(ctx1, 5*time.Second)
	require.True(t, ok)
	require.NoError(t, err)
	st, err := c2.Status(ctx, sub.ID)
	require.NoError(t, err)
	require.Equal(t, Running, st.State)
	require.Equal(t, "dies", st.Worker)
	require.Equal(t, 4, stepOf(st.Checkpoint))

	w2 := &Worker{Client: c2, Name: "resumes", WorkDir: t.TempDir()}
	st = runDone(t, c2, w2, sub.ID, 10*time.Second, "the job was not redelivered")
	require.Equal(t, "resumes", st.Worker)
	require.Equal(t, 2, st.Attempts)
	require.Equal(t, 4, st.ResumedFrom, "the second worker did not resume from the checkpoint")
	n, err := c2.Pending(ctx)
	require.NoError(t, err)
	require.Zero(t, n)

	want := trainDirect(t, job, data)
	require.True(t, bytes.Equal(want, adapterWeights(t, c2, "resumed", 1)), "resumed adapter differs from an uninterrupted run")

	// The checkpoints are gone from the work store once the job is done.
	infos, err := c2.work.List(ctx)
	require.NoError(t, err)
	for _, info := range infos {
		require.NotContains(t, info.Name, "/checkpoint/")
	}
}

// TestRedeliveryAfterAllocate checks a worker that dies after taking a
// version number and before recording it: the job's next delivery publishes
// under the same number, so the adapter's versions have no gap, and the
// adapter's next job gets the next number.
func TestRedeliveryAfterAllocate(t *testing.T) {
	ctx := context.Background()
	srv := startServer(t)
	opts := Options{AckWait: time.Second}
	nc1, c1 := connect(t, srv, opts)
	_, c2 := connect(t, srv, opts)
	data := testData(t, 20)
	first, err := c2.Submit(ctx, testJob("gapless", 4), data)
	require.NoError(t, err)

	ctx1, kill := context.WithCancel(ctx)
	defer kill()
	w1 := &Worker{Client: c1, Name: "dies", WorkDir: t.TempDir()}
	w1.afterAllocate = func() { nc1.Close(); kill() }
	ok, err := w1.RunOne(ctx1, 5*time.Second)
	require.True(t, ok)
	require.NoError(t, err)
	next, err := c2.index.Get(ctx, nextKey("gapless"))
	require.NoError(t, err)
	require.Equal(t, "1 "+first.ID, string(next.Value()), "the dead worker did not allocate v1")
	st, err := c2.Status(ctx, first.ID)
	require.NoError(t, err)
	require.Zero(t, st.Version, "the dead worker recorded its version")

	w2 := &Worker{Client: c2, Name: "survives", WorkDir: t.TempDir()}
	st = runDone(t, c2, w2, first.ID, 10*time.Second, "the job was not redelivered")
	require.Equal(t, 1, st.Version)

	second, err := c2.Submit(ctx, testJob("gapless", 2), data)
	require.NoError(t, err)
	st = runDone(t, c2, w2, second.ID, 10*time.Second, "")
	require.Equal(t, 2, st.Version)
	latest, err := c2.Adapters(t.TempDir()).Latest(ctx, "gapless")
	require.NoError(t, err)
	require.Equal(t, 2, latest.Version)
	require.Equal(t, second.ID, latest.Job)
}

// TestAllocateVersionOncePerJob checks that a job asking for a version
// number again gets the one it had, even after other jobs took later ones.
func TestAllocateVersionOncePerJob(t *testing.T) {
	ctx := context.Background()
	srv := startServer(t)
	_, c := connect(t, srv, Options{})
	for _, step := range []struct {
		job  string
		want int
	}{{"a", 1}, {"b", 2}, {"a", 1}, {"c", 3}, {"b", 2}, {"d", 4}} {
		n, err := c.allocateVersion(ctx, "counted", step.job)
		require.NoError(t, err)
		require.Equal(t, step.want, n, "job %s", step.job)
	}
}

// TestBadDataFails checks that a job whose data cannot be read ends as
// failed with the reason, and is not delivered again.
func TestBadDataFails(t *testing.T) {
	ctx := context.Background()
	srv := startServer(t)
	_, c := connect(t, srv, Options{AckWait: time.Second})
	sub, err := c.Submit(ctx, testJob("broken", 4), []byte("{\"text\": \"fine\"}\nnot json\n"))
	require.NoError(t, err)
	w := &Worker{Client: c}
	ok, err := w.RunOne(ctx, 5*time.Second)
	require.NoError(t, err)
	require.True(t, ok)
	st, err := c.Status(ctx, sub.ID)
	require.NoError(t, err)
	require.Equal(t, Failed, st.State)
	require.Contains(t, st.Error, sub.ID+"/data.jsonl:2: invalid JSON")
	ok, err = w.RunOne(ctx, 2*time.Second)
	require.NoError(t, err)
	require.False(t, ok, "a failed job was delivered again")
	n, err := c.Pending(ctx)
	require.NoError(t, err)
	require.Zero(t, n)
	_, err = c.Adapters(t.TempDir()).Latest(ctx, "broken")
	require.ErrorIs(t, err, ErrNoAdapter)
}

// TestLastDeliveryLost checks a job whose worker dies on its last allowed
// delivery: JetStream's advisory makes another worker record it as failed
// and remove it from the queue.
func TestLastDeliveryLost(t *testing.T) {
	ctx := context.Background()
	srv := startServer(t)
	opts := Options{AckWait: time.Second, MaxDeliver: 1}
	nc1, c1 := connect(t, srv, opts)
	_, c2 := connect(t, srv, opts)
	sub, err := c2.Submit(ctx, testJob("unlucky", 6), testData(t, 20))
	require.NoError(t, err)

	// The survivor runs first so that it hears the advisory.
	ctx2, stop2 := context.WithCancel(ctx)
	done2 := make(chan error)
	w2 := &Worker{Client: c2, Name: "survivor"}
	ctx1, kill := context.WithCancel(ctx)
	defer kill()
	w1 := &Worker{Client: c1, Name: "dies"}
	w1.afterUpload = func(int) { nc1.Close(); kill() }
	_, err = w1.RunOne(ctx1, 5*time.Second)
	require.NoError(t, err)
	go func() { done2 <- w2.Run(ctx2) }()
	require.Eventually(t, func() bool {
		st, err := c2.Status(ctx, sub.ID)
		return err == nil && st.State == Failed
	}, 15*time.Second, 100*time.Millisecond)
	stop2()
	require.NoError(t, <-done2)
	st, err := c2.Status(ctx, sub.ID)
	require.NoError(t, err)
	require.Contains(t, st.Error, "gave up after 1 deliveries")
	n, err := c2.Pending(ctx)
	require.NoError(t, err)
	require.Zero(t, n)
}

// TestWatch checks that a watcher sees existing versions as initial and a
// new version as it is published.
func TestWatch(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	srv := startServer(t)
	_, c := connect(t, srv, Options{})
	data := testData(t, 20)
	w := &Worker{Client: c}
	_, err := c.Submit(ctx, testJob("old", 2), data)
	require.NoError(t, err)
	_, err = w.RunOne(ctx, 5*time.Second)
	require.NoError(t, err)

	src := c.Adapters(t.TempDir())
	updates, err := src.Watch(ctx)
	require.NoError(t, err)
	u := <-updates
	require.True(t, u.Initial)
	require.Equal(t, "old", u.Name)
	require.Equal(t, 1, u.Version.Version)

	_, err = c.Submit(ctx, testJob("new", 2), data)
	require.NoError(t, err)
	_, err = w.RunOne(ctx, 5*time.Second)
	require.NoError(t, err)
	u = <-updates
	require.False(t, u.Initial)
	require.Equal(t, "new", u.Name)
	require.Equal(t, 1, u.Version.Version)
	dir, err := src.OpenVersion(ctx, u.Name, u.Version.Version)
	require.NoError(t, err)
	_, err = lora.Load(dir)
	require.NoError(t, err)
	list, err := src.List(ctx)
	require.NoError(t, err)
	require.Len(t, list, 2)
}

// TestSubmitRefuses checks the errors of a malformed job.
func TestSubmitRefuses(t *testing.T) {
	ctx := context.Background()
	srv := startServer(t)
	_, c := connect(t, srv, Options{})
	for _, tc := range []struct {
		edit func(*Job)
		want string
	}{
		{func(j *Job) { j.Adapter = "a/b" }, "adapter name"},
		{func(j *Job) { j.Base = "" }, "no base model"},
		{func(j *Job) { j.Quantize = "int3" }, "quantize"},
		{func(j *Job) { j.Train.LR = -1 }, "LR"},
		{func(j *Job) { j.Train.EvalSplit = 1 }, "eval split"},
		{func(j *Job) { j.LoRA.R = 0 }, "LoRA config"},
		{func(j *Job) { j.ID = "x.y" }, "job id"},
	} {
		j := testJob("ok", 2)
		tc.edit(&j)
		_, err := c.Submit(ctx, j, []byte("{}\n"))
		require.ErrorContains(t, err, tc.want)
	}
	_, err := c.Submit(ctx, testJob("ok", 2), nil)
	require.ErrorContains(t, err, "no training data")
}

// TestConnectEmbedded checks that the first Connect on a directory starts
// the server and a second one reaches it.
func TestConnectEmbedded(t *testing.T) {
	dir := t.TempDir()
	first, err := Connect("", dir, "first")
	require.NoError(t, err)
	require.NotNil(t, first.server)
	c, err := Setup(context.Background(), first.Conn, Options{})
	require.NoError(t, err)
	_, err = c.Submit(context.Background(), testJob("kept", 2), []byte("{}\n"))
	require.NoError(t, err)
	second, err := Connect("", dir, "second")
	require.NoError(t, err)
	require.Nil(t, second.server)
	require.Equal(t, first.ConnectedUrl(), second.ConnectedUrl())
	second.Close()
	first.Close()
	// The data outlives the server: a new one on the directory sees it.
	third, err := Connect("", dir, "third")
	require.NoError(t, err)
	defer third.Close()
	require.NotNil(t, third.server)
	c, err = Setup(context.Background(), third.Conn, Options{})
	require.NoError(t, err)
	all, err := c.List(context.Background())
	require.NoError(t, err)
	require.Len(t, all, 1)
	require.Equal(t, "kept", all[0].Adapter)
}

// TestStopHandsJobBack stops a worker (its context cancelled, its
// connection alive) mid-job: it uploads its last checkpoint and hands the job
// back at once; the next worker resumes from exactly that step and the
// adapter is bit-identical to an uninterrupted run.
func TestStopHandsJobBack(t *testing.T) {
	ctx := context.Background()
	srv := startServer(t)
	opts := Options{AckWait: time.Minute} // a redelivery cannot come from a timeout
	_, c := connect(t, srv, opts)
	data := testData(t, 40)
	job := testJob("stopped", 7)
	job.Train.CheckpointEvery = 4
	sub, err := c.Submit(ctx, job, data)
	require.NoError(t, err)

	ctx1, stop := context.WithCancel(ctx)
	defer stop()
	w1 := &Worker{Client: c, Name: "stops"}
	w1.afterUpload = func(int) { stop() } // after step 5, uploading step 4's checkpoint
	ok, err := w1.RunOne(ctx1, 5*time.Second)
	require.NoError(t, err)
	require.True(t, ok)
	st, err := c.Status(ctx, sub.ID)
	require.NoError(t, err)
	require.Equal(t, Queued, st.State)
	require.Equal(t, 5, stepOf(st.Checkpoint), "the checkpoint written on stopping was not uploaded")

	w2 := &Worker{Client: c, Name: "continues"}
	ok, err = w2.RunOne(ctx, 5*time.Second)
	require.NoError(t, err)
	require.True(t, ok, "the job was not handed back")
	st, err = c.Status(ctx, sub.ID)
	require.NoError(t, err)
	require.Equal(t, Done, st.State, st.Error)
	require.Equal(t, 5, st.ResumedFrom)
	require.True(t, bytes.Equal(trainDirect(t, job, data), adapterWeights(t, c, "stopped", 1)))
}

// TestOpenKeepsSettings checks that Open uses what Setup made without
// changing it, and reports a server where nothing is set up.
func TestOpenKeepsSettings(t *testing.T) {
	ctx := context.Background()
	srv := startServer(t)
	nc, err := nats.Connect(srv.URL())
	require.NoError(t, err)
	defer nc.Close()
	_, err = Open(ctx, nc)
	require.ErrorIs(t, err, ErrNotSetUp)
	_, err = Setup(ctx, nc, Options{AckWait: 7 * time.Second, MaxDeliver: 3})
	require.NoError(t, err)
	c, err := Open(ctx, nc)
	require.NoError(t, err)
	require.Equal(t, 7*time.Second, c.opts.AckWait)
	require.Equal(t, 3, c.opts.MaxDeliver)
}
