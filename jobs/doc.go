// Package jobs trains LoRA adapters on a pool of machines through NATS
// JetStream and hands the results to serving replicas.
//
// A Job (adapter name, base model id, lora.Config, training settings) is
// published on a work-queue stream; its training data lives in the JetStream
// object store and its state (queued, running with step and loss, done,
// failed with the reason) in a key-value bucket. A Worker pulls one job at a
// time, trains it with package train, and sends in-progress acknowledgements
// while it trains; it uploads train's checkpoint directory to the object
// store as it goes, so that when a worker dies its job is redelivered to
// another that resumes from the last checkpoint and produces the same adapter
// bit for bit. A job that fails for a reason of its own (bad data, a bad
// configuration, a diverging loss) ends as failed and is not retried; other
// failures are retried at most Options.MaxDeliver times.
//
// Adapter versions are immutable objects NAME/vN/FILE in the adapter object
// store; a key per name in a key-value bucket points to the latest version.
// An AdapterSource fetches the latest (or any) version of a name into a local
// directory and watches for new versions, which is what a serving replica
// needs to hot-load adapters.
//
// Where things live:
//
//	stream  GOLORA_JOBS           subjects golora.jobs.ID, work-queue retention
//	consumer golora-workers       durable pull consumer shared by all workers
//	kv      golora_jobs           ID → Status (JSON)
//	kv      golora_adapters       latest.NAME → Version (JSON), next.NAME → last allocated version number
//	objects golora_work           ID/data.jsonl, ID/checkpoint/STEP/FILE
//	objects golora_adapter_files  NAME/vN/adapter_config.json, NAME/vN/adapter_model.safetensors
//
// Connect reaches a NATS server by URL or starts one in-process on a local
// directory (EmbeddedServer), so a single machine needs nothing installed.
package jobs
