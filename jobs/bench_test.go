package jobs

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// BenchmarkJobsPerHour runs batches of 16 small jobs (8 steps of 2 × 32
// tokens, r 4 on all linears of the NF4 embedded base, a checkpoint upload
// every 2 steps) through 1, 2 and 4 workers, each on its own connection to
// one embedded server, and reports the throughput. Bases are loaded before
// the clock starts.
//
// The baseline, direct, trains the same jobs one after the other with
// package train in this process: no NATS, no uploads.
func BenchmarkJobsPerHour(b *testing.B) {
	const jobsPerBatch = 16
	b.Run("direct", func(b *testing.B) {
		data := testData(b, 30)
		w := &Worker{}
		w.init()
		_, err := w.base(context.Background(), EmbeddedBase, "")
		require.NoError(b, err)
		b.ResetTimer()
		for n := range b.N {
			for i := range jobsPerBatch {
				job := testJob(fmt.Sprintf("a%d", i), 8)
				job.Train.Seed = uint64(n*jobsPerBatch + i + 1)
				job.Train.EvalSplit = 0
				trainDirectOn(b, w, job, data)
			}
		}
		b.ReportMetric(float64(b.N*jobsPerBatch)/b.Elapsed().Hours(), "jobs/hour")
	})
	for _, workers := range []int{1, 2, 4} {
		b.Run(fmt.Sprintf("workers=%d", workers), func(b *testing.B) {
			ctx := context.Background()
			srv := startServer(b)
			_, c := connect(b, srv, Options{})
			data := testData(b, 30)
			ws := make([]*Worker, workers)
			for i := range ws {
				_, wc := connect(b, srv, Options{})
				ws[i] = &Worker{Client: wc, Name: fmt.Sprintf("w%d", i), WorkDir: b.TempDir()}
				ws[i].init()
				_, err := ws[i].base(ctx, EmbeddedBase, "")
				require.NoError(b, err)
			}
			b.ResetTimer()
			var total time.Duration
			for n := range b.N {
				b.StopTimer()
				var ids []string
				for i := range jobsPerBatch {
					job := testJob(fmt.Sprintf("a%d", i), 8)
					job.Train.Seed = uint64(n*jobsPerBatch + i + 1)
					job.Train.EvalSplit = 0
					sub, err := c.Submit(ctx, job, data)
					require.NoError(b, err)
					ids = append(ids, sub.ID)
				}
				b.StartTimer()
				start := time.Now()
				var wg sync.WaitGroup
				for _, w := range ws {
					wg.Go(func() {
						for {
							ok, err := w.RunOne(ctx, 500*time.Millisecond)
							if err != nil || !ok {
								return
							}
						}
					})
				}
				wg.Wait()
				total += time.Since(start)
				for _, id := range ids {
					st, err := c.Status(ctx, id)
					require.NoError(b, err)
					require.Equal(b, Done, st.State, st.Error)
				}
			}
			// The last RunOne of each worker waits 0.5 s for a job that
			// never comes; that idle time is not throughput.
			busy := total - time.Duration(b.N)*500*time.Millisecond
			b.ReportMetric(float64(b.N*jobsPerBatch)/busy.Hours(), "jobs/hour")
		})
	}
}

// BenchmarkWatchLatency measures the time from the end of a job's training
// (Version.Created, stamped as publishing starts) to a watcher receiving the
// new version: the upload of the adapter files, the index update and the
// watch delivery.
func BenchmarkWatchLatency(b *testing.B) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	srv := startServer(b)
	_, c := connect(b, srv, Options{})
	_, wc := connect(b, srv, Options{})
	data := testData(b, 30)
	w := &Worker{Client: wc, WorkDir: b.TempDir()}
	updates, err := c.Adapters(b.TempDir()).Watch(ctx)
	require.NoError(b, err)
	type seen struct {
		u  Update
		at time.Time
	}
	received := make(chan seen, b.N)
	go func() { // stamps each update as it arrives
		for u := range updates {
			received <- seen{u, time.Now()}
		}
	}()
	var lat []time.Duration
	for n := range b.N {
		job := testJob("watched", 2)
		job.Train.Seed = uint64(n + 1)
		_, err := c.Submit(ctx, job, data)
		require.NoError(b, err)
		ok, err := w.RunOne(ctx, 5*time.Second)
		require.NoError(b, err)
		require.True(b, ok)
		r := <-received
		lat = append(lat, r.at.Sub(r.u.Version.Created))
		require.Equal(b, n+1, r.u.Version.Version)
	}
	slices.Sort(lat)
	b.ReportMetric(float64(lat[len(lat)/2].Microseconds())/1e3, "p50-ms")
	b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds())/1e3, "p99-ms")
}

// BenchmarkServeLatency measures, per job, the time from the end of its
// training (Version.Created, stamped as publishing starts) to a serving
// replica (store, engine and HotLoad in this process, on its own
// connection) using the new version of an adapter it has cached:
// reload-ms is when HotLoad has the new version in the store (upload,
// index update, watch delivery, download, load); serve-ms is when the first
// request that used it ended, for a client that asks for the adapter
// without pause (one-token greedy completions). Run with -benchtime=20x.
func BenchmarkServeLatency(b *testing.B) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	srv := startServer(b)
	_, c := connect(b, srv, Options{})
	_, rc := connect(b, srv, Options{})
	_, wc := connect(b, srv, Options{})
	r, base := startReplica(b, rc)
	data := testData(b, 30)
	w := &Worker{Client: wc, WorkDir: b.TempDir()}
	publishRandom(b, c, base, "hot", 1)
	_, ver, err := r.complete(ctx, "hot", 1)
	require.NoError(b, err)
	require.Equal(b, "v1", ver)
	r.waitEvent(b, "hot") // v1's: skipped, or reloaded if it came during the first load

	type served struct {
		version string
		at      time.Time
	}
	first := make(chan served, b.N+1)
	go func() { // the client: reports each version the first time it is used
		last := "v1"
		for ctx.Err() == nil {
			_, v, err := r.complete(ctx, "hot", 1)
			if err == nil && v != last {
				last = v
				first <- served{v, time.Now()}
			}
		}
	}()
	var reload, serve []time.Duration
	for n := range b.N {
		job := testJob("hot", 2)
		job.Train.Seed = uint64(n + 1)
		_, err := c.Submit(ctx, job, data)
		require.NoError(b, err)
		ok, err := w.RunOne(ctx, 5*time.Second)
		require.NoError(b, err)
		require.True(b, ok)
		ev := r.waitEvent(b, "hot")
		require.Equal(b, "reloaded", ev.Action, ev.Err)
		require.Equal(b, n+2, ev.Version.Version)
		reload = append(reload, ev.At.Sub(ev.Created))
		select {
		case s := <-first:
			require.Equal(b, versionLabel(n+2), s.version)
			serve = append(serve, s.at.Sub(ev.Created))
		case <-time.After(30 * time.Second):
			b.Fatalf("v%d not served within 30 s of its reload", n+2)
		}
	}
	b.StopTimer()
	for _, m := range []struct {
		name string
		d    []time.Duration
	}{{"reload", reload}, {"serve", serve}} {
		slices.Sort(m.d)
		b.ReportMetric(float64(m.d[len(m.d)/2].Microseconds())/1e3, m.name+"-p50-ms")
		b.ReportMetric(float64(m.d[len(m.d)*99/100].Microseconds())/1e3, m.name+"-p99-ms")
	}
}
