# Shared by the benchmark scripts (source it): a scratch directory, processes stopped on exit,
# the release build, a nats-server of the script's own, and server nodes started from a config.
# Everything listens on 127.0.0.1 only. Callers set `set -Eeuo pipefail` and cd to the repo.
#
#   bench_init                 scratch dir in $work, cleanup trap, release build ($bin, $bench)
#   bench_on_exit 'CMD'        also run the shell command CMD (one string) on exit
#   bench_nats                 starts nats-server with JetStream; sets $nats_port and $nats_pid
#   bench_start NAME CONFIG [PREFIX...]
#                              starts `switchboard serve --config CONFIG` (PREFIX: e.g. taskset -c 0);
#                              prints its address; its pid is in $work/NAME.pid

bench_init() {
    work="$(mktemp -d)"
    bench_exit_cmds=()
    trap bench_cleanup EXIT
    cargo build --release -q -p switchboard -p switchboard-bench
    bin=target/release/switchboard
    bench=target/release/switchboard-bench
}

bench_on_exit() {
    bench_exit_cmds+=("$1")
}

bench_cleanup() {
    local p c
    # Nodes start inside $(...), a subshell: their pids live in files, not variables.
    for p in $(cat "$work"/*.pid 2>/dev/null); do kill "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
    for c in "${bench_exit_cmds[@]}"; do eval "$c" || true; done
    rm -rf "$work"
}

bench_nats() {
    local nats
    nats="$(command -v nats-server || echo /usr/sbin/nats-server)"
    "$nats" -a 127.0.0.1 -p -1 -js -sd "$work/js" >"$work/nats.log" 2>&1 &
    nats_pid=$!
    echo "$nats_pid" >"$work/nats.pid"
    nats_port=""
    for _ in $(seq 100); do
        nats_port="$(grep -o 'client connections on 127.0.0.1:[0-9]*' "$work/nats.log" | grep -o '[0-9]*$' || true)"
        [ -n "$nats_port" ] && return
        sleep 0.1
    done
    echo "nats-server did not start" >&2
    cat "$work/nats.log" >&2
    exit 1
}

bench_start() {
    local name=$1 config=$2 addr
    shift 2
    env -u SWITCHBOARD_CONFIG "$@" "$bin" serve --config "$config" >"$work/$name.out" 2>"$work/$name.err" &
    echo $! >"$work/$name.pid"
    for _ in $(seq 200); do
        addr="$(grep -o 'listening on http://[0-9.:]*' "$work/$name.out" | head -1 | sed 's#.*http://##' || true)"
        [ -n "$addr" ] && { echo "$addr"; return; }
        sleep 0.05
    done
    echo "node $name did not start" >&2
    cat "$work/$name.err" >&2
    exit 1
}
