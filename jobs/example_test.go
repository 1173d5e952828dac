package jobs_test

import (
	"context"
	"fmt"
	"log"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/golora/golora/jobs"
	"github.com/golora/golora/lora"
)

// Example runs the whole flow on one machine: an embedded JetStream server,
// a job submitted, a worker training it, the adapter fetched as a serving
// replica would.
func Example() {
	dir, err := os.MkdirTemp("", "golora-jobs-example-")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)
	ctx := context.Background()
	conn, err := jobs.Connect("", filepath.Join(dir, "nats"), "example")
	if err != nil {
		log.Fatal(err)
	}
	defer conn.Close()
	client, err := jobs.Setup(ctx, conn.Conn, jobs.Options{})
	if err != nil {
		log.Fatal(err)
	}

	data, err := os.ReadFile("../examples/quickstart/data/train.jsonl")
	if err != nil {
		log.Fatal(err)
	}
	first20 := strings.Join(strings.SplitAfter(string(data), "\n")[:20], "")
	settings := jobs.DefaultTrainSettings()
	settings.Steps, settings.BatchSize, settings.SeqLen = 4, 2, 32
	job, err := client.Submit(ctx, jobs.Job{
		Adapter: "acme", Base: jobs.EmbeddedBase, LoRA: lora.DefaultConfig(), Train: settings,
	}, []byte(first20))
	if err != nil {
		log.Fatal(err)
	}

	worker := &jobs.Worker{Client: client}
	if _, err := worker.RunOne(ctx, 5*time.Second); err != nil {
		log.Fatal(err)
	}
	st, err := client.Status(ctx, job.ID)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(st.State, st.Step, "steps, version", st.Version)

	adapterDir, v, err := client.Adapters(filepath.Join(dir, "cache")).Open(ctx, "acme")
	if err != nil {
		log.Fatal(err)
	}
	a, err := lora.Load(adapterDir)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("%s v%d: %d adapted layers\n", v.Name, v.Version, len(a.Modules()))
	// Output:
	// done 4 steps, version 1
	// acme v1: 10 adapted layers
}
