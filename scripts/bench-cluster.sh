#!/usr/bin/env bash
# Fan-out on one node and on three nodes over NATS, in one run (docs/benchmarks.md, "Several nodes").
#
#   bash scripts/bench-cluster.sh [SUBSCRIBERS] [MESSAGES] [RATE]
#
# Starts its own nats-server (JetStream, dynamic port, scratch directory), a fresh PostgreSQL
# database is not needed (pubsub keeps nothing), one single node and three clustered nodes of the
# release build on loopback ports, then runs `switchboard-bench fanout` twice with the same
# numbers: against the single node, and with the publisher on node 1 and the subscribers spread
# over the three nodes. Reports deliveries/s, loss, p99 and the CPU seconds of every server and of
# nats-server. Everything it starts is stopped on exit. Traffic stays on 127.0.0.1.
set -Eeuo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

subscribers="${1:-1000}"
messages="${2:-20000}"
rate="${3:-500}"
source scripts/lib/bench.sh
bench_init
bench_nats
port=$nats_port

common='[server]
listen = ["127.0.0.1:0"]
[ops]
enabled = false
[console]
enabled = false
[rtc]
enabled = false
[pairing]
enabled = false
[meetings]
enabled = false
[pubsub]
outbox_messages = 65536
outbox_bytes = 67108864
[log]
level = "warn"'
printf '%s\n' "$common" >"$work/single.toml"
single="$(bench_start single "$work/single.toml")"
for i in 1 2 3; do
    printf '%s\n[cluster]\nnats_url = "nats://127.0.0.1:%s"\nnode_name = "bench%s"\nsubject_prefix = "bench"\n' \
        "$common" "$port" "$i" >"$work/node$i.toml"
    eval "node$i=\$(bench_start node$i \"\$work/node$i.toml\")"
done
sleep 2 # the three nodes hear each other's heartbeats

run() {
    echo "==== $1"
    shift
    "$bench" fanout --subscribers "$subscribers" --messages "$messages" --rate "$rate" "$@"
}
run "one node" --url "ws://$single/pubsub/bench" --cpu-pid "$(cat "$work/single.pid")"
run "three nodes (publisher on node 1, subscribers spread over 1-3)" \
    --url "ws://$node1/pubsub/bench" \
    --subscriber-url "ws://$node1/pubsub/bench" \
    --subscriber-url "ws://$node2/pubsub/bench" \
    --subscriber-url "ws://$node3/pubsub/bench" \
    --cpu-pid "$(cat "$work/node1.pid")" --cpu-pid "$(cat "$work/node2.pid")" \
    --cpu-pid "$(cat "$work/node3.pid")" --cpu-pid "$nats_pid"
