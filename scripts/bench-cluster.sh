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
work="$(mktemp -d)"
pids=()
cleanup() {
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT

cargo build --release -q -p switchboard -p switchboard-bench
bin=target/release/switchboard
bench=target/release/switchboard-bench
nats="$(command -v nats-server || echo /usr/sbin/nats-server)"

"$nats" -a 127.0.0.1 -p -1 -js -sd "$work/js" >"$work/nats.log" 2>&1 &
pids+=($!)
nats_pid=$!
for _ in $(seq 100); do
    port="$(grep -o 'client connections on 127.0.0.1:[0-9]*' "$work/nats.log" | grep -o '[0-9]*$' || true)"
    [ -n "$port" ] && break
    sleep 0.1
done
[ -n "$port" ] || { echo "nats-server did not start"; cat "$work/nats.log"; exit 1; }

# start NAME CONFIG: runs a node, prints its address once it listens.
start() {
    local name=$1 config=$2
    env -u SWITCHBOARD_CONFIG "$bin" serve --config "$config" >"$work/$name.out" 2>"$work/$name.err" &
    pids+=($!)
    echo $! >"$work/$name.pid"
    for _ in $(seq 200); do
        addr="$(grep -o 'listening on http://[0-9.:]*' "$work/$name.out" | head -1 | sed 's#.*http://##' || true)"
        [ -n "$addr" ] && { echo "$addr"; return; }
        sleep 0.05
    done
    echo "node $name did not start" >&2; cat "$work/$name.err" >&2; exit 1
}

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
single="$(start single "$work/single.toml")"
for i in 1 2 3; do
    printf '%s\n[cluster]\nnats_url = "nats://127.0.0.1:%s"\nnode_name = "bench%s"\nsubject_prefix = "bench"\n' \
        "$common" "$port" "$i" >"$work/node$i.toml"
    eval "node$i=\$(start node$i \"\$work/node$i.toml\")"
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
