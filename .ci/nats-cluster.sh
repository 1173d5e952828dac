#!/usr/bin/env bash
# Distributed training on a real NATS JetStream cluster, on loopback:
# builds nats-server from its Go module at a pinned version, starts three
# JetStream nodes (streams and buckets with 3 replicas), three golora workers
# as separate processes, submits 50 small jobs on the embedded base, kills -9
# one worker (while it trains a job) and one NATS node mid-run, and checks
# that every job ended done exactly once, that every adapter version is
# present and loads, that the killed worker's job was redelivered and
# resumed from its uploaded checkpoint, and that
# nothing is left in the queue. Two `golora serve --nats` replicas run
# through it all, asked for some adapters while the jobs run (so that they
# hot-load their later versions); at the end both must answer a completion
# for every adapter at its latest version. Every wait is bounded; every
# process it starts is stopped on exit.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH=/usr/local/go/bin:$PATH

NATS_SERVER_VERSION=v2.15.3 # as in go.mod
JOBS=50

tmp=$(mktemp -d /tmp/golora-nats-ci.XXXXXX)
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill -9 "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$tmp"
}
trap cleanup EXIT

step() { printf '\n=== %s\n' "$*"; }
fail() { echo "FAIL: $*" >&2; for f in "$tmp"/*.log; do echo "--- $f"; tail -n 20 "$f"; done >&2; exit 1; }
left() { echo $((DEADLINE - SECONDS)); }

step "build nats-server $NATS_SERVER_VERSION and golora"
GOBIN="$tmp/bin" timeout 240 go install "github.com/nats-io/nats-server/v2@$NATS_SERVER_VERSION"
timeout 240 go build -o "$tmp/bin/golora" ./cmd/golora
golora="$tmp/bin/golora"
# The builds are bounded by their timeouts; the run by this deadline.
DEADLINE=$((SECONDS + 210))
g() { timeout 30 "$golora" "$@"; }

# Free loopback ports: three client ports, three cluster ports, two for the
# serving replicas.
ports=()
p=$((20000 + RANDOM % 20000))
while [ ${#ports[@]} -lt 8 ]; do
  if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then ports+=("$p"); fi
  p=$((p + 1))
done
routes="nats-route://127.0.0.1:${ports[3]},nats-route://127.0.0.1:${ports[4]},nats-route://127.0.0.1:${ports[5]}"
urls="nats://127.0.0.1:${ports[0]},nats://127.0.0.1:${ports[1]},nats://127.0.0.1:${ports[2]}"

step "three JetStream nodes on 127.0.0.1:${ports[0]}-${ports[2]}"
node_pids=()
for i in 0 1 2; do
  mkdir -p "$tmp/n$i"
  cat >"$tmp/n$i.conf" <<EOF
server_name: n$i
listen: 127.0.0.1:${ports[$i]}
jetstream { store_dir: "$tmp/n$i", max_memory_store: 64MB, max_file_store: 1GB }
cluster {
  name: golora-ci
  listen: 127.0.0.1:${ports[$((i + 3))]}
  routes: [$routes]
}
EOF
  "$tmp/bin/nats-server" -c "$tmp/n$i.conf" >"$tmp/n$i.log" 2>&1 &
  pids+=($!)
  node_pids+=($!)
done

common=(--nats "$urls" --replicas 3 --ack-wait 5s --max-deliver 5)
until g jobs "${common[@]}" >/dev/null 2>"$tmp/setup.log"; do
  [ "$(left)" -gt 150 ] || fail "the cluster did not form: $(cat "$tmp/setup.log")"
  sleep 1
done
echo "cluster up; stream and buckets with 3 replicas"

step "three workers"
worker_pids=()
for i in 1 2 3; do
  "$golora" worker "${common[@]}" --name "w$i" --work-dir "$tmp" --checkpoint-every 2 >"$tmp/w$i.log" 2>&1 &
  pids+=($!)
  worker_pids+=($!)
done

step "two serving replicas on 127.0.0.1:${ports[6]} and 127.0.0.1:${ports[7]}"
replicas=("127.0.0.1:${ports[6]}" "127.0.0.1:${ports[7]}")
for i in 0 1; do
  "$golora" serve --nats "$urls" --addr "${replicas[$i]}" --adapter-cache "$tmp/cache$i" >"$tmp/serve$i.log" 2>&1 &
  pids+=($!)
done
for r in "${replicas[@]}"; do
  until curl -sf --max-time 2 "http://$r/health" >/dev/null; do
    [ "$(left)" -gt 150 ] || fail "replica $r did not start"
    sleep 0.5
  done
done
# complete ADDR ADAPTER: prints the HTTP status and the adapter version used.
complete() {
  curl -s --max-time 20 -o /dev/null -D - -H 'Content-Type: application/json' \
    -d "{\"model\":\"$2\",\"prompt\":\"Once upon a time\",\"max_tokens\":4,\"temperature\":0}" \
    "http://$1/v1/completions" | awk 'NR == 1 { s = $2 } tolower($1) == "golora-adapter-version:" { v = $2 } END { sub(/\r/, "", v); print s, v }'
}
# While the jobs run, clients ask both replicas for customer-0..4, so that
# those are cached when their later versions come and must be hot-loaded.
(
  while true; do
    for k in 0 1 2 3 4; do
      for r in "${replicas[@]}"; do complete "$r" "customer-$k" >/dev/null || true; done
    done
    sleep 0.5
  done
) &
poller=$!
pids+=("$poller")
echo "replicas up"

count() { g jobs "${common[@]}" | awk -v s="$1" '$3 == s' | wc -l; }

head -n 30 examples/quickstart/data/train.jsonl >"$tmp/data.jsonl"
submit() { # jobs $1..$2: 25 adapters, 2 versions each
  for i in $(seq "$1" "$2"); do
    g submit "${common[@]}" --adapter "customer-$((i % 25))" --data "$tmp/data.jsonl" \
      --steps 8 --batch 2 --seq-len 32 --checkpoint-every 2 --seed "$i" --eval-split 0 >/dev/null
  done
}
step "submit jobs 1-20 of $JOBS (in the background)"
submit 1 20 &
submitter=$!
pids+=("$submitter")

step "kill -9 worker w1 while it trains (past its first checkpoint), and NATS node n1"
# A job takes about half a second, so it can end between the listing that
# shows it running and the kill. w1 is frozen (SIGSTOP) first, and killed
# only if the job is still running once anything it had already sent has
# had time to reach the cluster; else it is thawed and the next job tried.
victim=""
while [ -z "$victim" ]; do
  [ "$(left)" -gt 60 ] || fail "w1 never ran a job"
  candidate=$(g jobs "${common[@]}" | awk '$3 == "running" && $7 == "w1" && $4 + 0 >= 3 { print $1; exit }' || true)
  if [ -z "$candidate" ]; then
    sleep 0.2
    continue
  fi
  kill -STOP "${worker_pids[0]}"
  sleep 1
  if [ "$(g jobs "${common[@]}" | awk -v id="$candidate" '$1 == id { print $3 }')" = running ]; then
    victim=$candidate
  else
    kill -CONT "${worker_pids[0]}"
  fi
done
kill -9 "${worker_pids[0]}" 2>/dev/null
kill -9 "${node_pids[1]}"
echo "killed w1 during job $victim ($(count done) jobs done) and node n1"
wait "$submitter" || fail "submitting jobs 1-20"

step "submit jobs 21-$JOBS to the two nodes and two workers left"
submit 21 "$JOBS"

step "wait for every job to end"
while true; do
  done_n=$(count done 2>/dev/null || echo 0)
  failed_n=$(count failed 2>/dev/null || echo 0)
  [ $((done_n + failed_n)) -lt "$JOBS" ] || break
  [ "$(left)" -gt 10 ] || fail "only $done_n done and $failed_n failed of $JOBS jobs in time"
  sleep 1
done
echo "$done_n done, $failed_n failed"

step "verify: every job done once, every adapter version loads, queue empty"
g jobs "${common[@]}" --verify || fail "verification"
attempts=$(g jobs "${common[@]}" | awk -v id="$victim" '$1 == id { print $3, $8 }')
case "$attempts" in
done\ [2-9]*) echo "job $victim of the killed worker: $attempts attempts" ;;
*) fail "job $victim of the killed worker: want done after a redelivery, got '$attempts'" ;;
esac
grep -h "msg=\"worker: resumed\" job=$victim" "$tmp"/w[23].log ||
  fail "job $victim was not resumed from its uploaded checkpoint"

kill "$poller" 2>/dev/null || true

step "both replicas answer for every adapter at its latest version"
latest=$(g jobs "${common[@]}" --adapters | awk 'NR > 1 { print $1, $2 }')
[ "$(echo "$latest" | wc -l)" -eq 25 ] || fail "want 25 adapters, got: $latest"
while read -r name version; do
  for r in "${replicas[@]}"; do
    # A version published a moment ago may still be on its way to the
    # replica, or its watch may be recovering from the killed node (the
    # replica's resync then catches up within 5 s): tries for up to 15 s,
    # each bounded.
    got=""
    for try in $(seq 15); do
      got=$(complete "$r" "$name")
      [ "$got" != "200 $version" ] || break
      [ "$(left)" -gt 0 ] || fail "out of time asking the replicas"
      sleep 1
    done
    [ "$got" = "200 $version" ] || fail "replica $r, adapter $name: want 200 $version, got '$got'"
  done
done <<<"$latest"
for i in 0 1; do
  reloads=$(grep -c "hot-load: adapter reloaded" "$tmp/serve$i.log" || true)
  echo "replica ${replicas[$i]}: 25 adapters at their latest versions, $reloads hot reloads"
  [ "$reloads" -gt 0 ] || fail "replica ${replicas[$i]} hot-loaded no new version"
done

echo
echo "NATS cluster CI passed"
