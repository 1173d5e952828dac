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
