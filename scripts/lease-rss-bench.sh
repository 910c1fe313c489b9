#!/usr/bin/env bash
# Lease memory benchmark: starts `serve` (release build) on loopback with a
# throwaway data directory, resolves N times without releasing a lease, and
# reads the host's resident memory (VmRSS) every tenth of the way. With
# PREVIOUS_BIN set to another build's binary (e.g. one with the in-memory
# lease table) it runs the same load against that one too, in the same run.
# Then it checks that the first lease still authorizes, restarts the host on
# the same data directory and checks it again (a lease survives a restart).
# Writes the figures to docs/benchmarks.md under "## Lease memory".
#
# Usage: bash scripts/lease-rss-bench.sh [N resolves, default 1000000]
#        PREVIOUS_BIN=/path/to/old/platos-host bash scripts/lease-rss-bench.sh
#
# The load generator is Python (http.client, keep-alive, several processes):
# no extra tool to install. The tokens belong to the throwaway data
# directory, which is deleted at the end.
set -euo pipefail
cd "$(dirname "$0")/.."

N="${1:-1000000}"
PORT="${PLATOS_BENCH_PORT:-17879}"
BASE="http://127.0.0.1:$PORT"
SCOPE="bench/lease/prod"
WORKERS="${WORKERS:-4}"

command -v curl >/dev/null || { apt-get update && apt-get install -y curl; }
command -v python3 >/dev/null || { apt-get update && apt-get install -y python3; }

if [[ -z "${HOST_BIN:-}" ]]; then
    cargo build --release -p platos-host
    HOST_BIN="${CARGO_TARGET_DIR:-target}/release/platos-host"
fi

WORK="$(mktemp -d)"
HOST_PID=""
stop_host() {
    if [[ -n "$HOST_PID" ]]; then kill "$HOST_PID" 2>/dev/null || true; wait "$HOST_PID" 2>/dev/null || true; fi
    HOST_PID=""
}
trap 'stop_host; rm -rf "$WORK"' EXIT

start_host() { # BINARY DATA_DIR
    env -u ENCRYPTION_KEY -u ENCRYPTION_KEY_PREVIOUS PLATOS_DATA_DIR="$2" PLATOS_LOG=warn \
        "$1" serve --listen "127.0.0.1:$PORT" --health-interval 0 --import-process-env false \
        --env-file /dev/null >>"$WORK/host.log" 2>&1 &
    HOST_PID=$!
    for _ in $(seq 1 600); do
        curl -fsS "$BASE/healthz" >/dev/null 2>&1 && return 0
        kill -0 "$HOST_PID" 2>/dev/null || { cat "$WORK/host.log"; exit 1; }
        sleep 0.1
    done
    echo "the host did not start"; cat "$WORK/host.log"; exit 1
}

rss_kib() { awk '/^VmRSS/ {print $2}' "/proc/$HOST_PID/status"; }

# One run: NAME BINARY. Writes $WORK/NAME.json.
run() {
    local name="$1" bin="$2" data="$WORK/$1-data"
    start_host "$bin" "$data"
    local operator; operator="$(cat "$data/operator.token")"
    curl -fsS -X PUT "$BASE/v1/scopes/$SCOPE/env/OPENAI_API_KEY" -H @- -H 'content-type: application/json' \
        --data '{"value":"sk-bench-not-a-real-key-0123456789"}' <<<"Authorization: Bearer $operator" >/dev/null
    local agent
    agent="$(curl -fsS -X POST "$BASE/v1/tokens" -H @- -H 'content-type: application/json' \
        --data "{\"scope\":\"$SCOPE\",\"label\":\"lease bench\"}" <<<"Authorization: Bearer $operator" |
        python3 -c 'import json,sys; print(json.load(sys.stdin)["token"])')"
    echo "== $name: $N resolves without release ($bin)"
    python3 - "$BASE" "$SCOPE" "$agent" "$N" "$WORKERS" "$HOST_PID" "$WORK/$name.json" <<'PY'
import http.client, json, multiprocessing, sys, time
base, scope, agent, n, workers, pid, out = sys.argv[1:]
n, workers = int(n), int(workers)
host, port = base.removeprefix("http://").split(":")
path = f"/v1/scopes/{scope}/resolve"
headers = {"Authorization": f"Bearer {agent}", "content-type": "application/json"}
body = b'{"provider":"openai"}'

def rss():
    with open(f"/proc/{pid}/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("VmRSS"))

def work(count, first):
    conn = http.client.HTTPConnection(host, int(port))
    lease = None
    for _ in range(count):
        conn.request("POST", path, body, headers)
        answer = conn.getresponse()
        data = answer.read()
        if answer.status != 200:
            raise SystemExit(f"resolve answered {answer.status}: {data[:200]!r}")
        if first and lease is None:
            lease = json.loads(data)["lease"]["id"]
    return lease

def batch(pool, count):
    per = [count // workers + (1 if i < count % workers else 0) for i in range(workers)]
    return pool.starmap(work, [(c, i == 0) for i, c in enumerate(per)])

with multiprocessing.Pool(workers) as pool:
    first = batch(pool, 1000)[0]
    points = [(1000, rss())]
    done, started = 1000, time.monotonic()
    step = max((n - done) // 10, 1)
    while done < n:
        count = min(step, n - done)
        batch(pool, count)
        done += count
        points.append((done, rss()))
        print(f"  {done:>9,} resolves: {points[-1][1] / 1024:,.0f} MiB", flush=True)
    elapsed = time.monotonic() - started
json.dump({"points": points, "rate": (n - 1000) / elapsed, "first_lease": first}, open(out, "w"))
PY
    local lease; lease="$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["first_lease"])' "$WORK/$name.json")"
    authorize() {
        curl -sS -o /dev/null -w '%{http_code}' -X POST "$BASE/v1/scopes/$SCOPE/leases/$lease/authorize" \
            -H @- -H 'content-type: application/json' \
            --data '{"request":{"method":"POST","url":"https://api.openai.com/v1/chat/completions","headers":[],"body":"{}"}}' \
            <<<"Authorization: Bearer $agent"
    }
    local before; before="$(authorize)"
    stop_host
    start_host "$bin" "$data"
    local after; after="$(authorize)"
    stop_host
    python3 - "$WORK/$name.json" "$before" "$after" <<'PY'
import json, sys
path, before, after = sys.argv[1:]
data = json.load(open(path))
data["authorize_first_lease"] = int(before)
data["authorize_after_restart"] = int(after)
json.dump(data, open(path, "w"))
PY
    echo "  the first lease authorizes: $before at the end, $after after a restart"
}

run current "$HOST_BIN"
NAMES=(current)
if [[ -n "${PREVIOUS_BIN:-}" ]]; then
    run previous "$PREVIOUS_BIN"
    NAMES+=(previous)
fi

python3 - "$WORK" "$N" "$WORKERS" "${NAMES[@]}" <<'PY'
import datetime, json, os, re, subprocess, sys
work, n, workers, *names = sys.argv[1:]
runs = {name: json.load(open(os.path.join(work, name + ".json"))) for name in names}
cpu = subprocess.run(["sh", "-c", "grep -m1 'model name' /proc/cpuinfo | cut -d: -f2"], capture_output=True, text=True).stdout.strip()
load_avg = open("/proc/loadavg").read().split()[0]
label = {"current": "token leases (this build)", "previous": "in-memory lease table (PREVIOUS_BIN)"}
rows = []
for name, run in runs.items():
    points = run["points"]
    start, end = points[0][1] / 1024, points[-1][1] / 1024
    peak = max(rss for _, rss in points) / 1024
    rows.append(f"| {label[name]} | {run['rate']:,.0f} | {start:,.0f} | {end:,.0f} | {peak:,.0f} | {end - start:+,.0f} | {run['authorize_first_lease']} / {run['authorize_after_restart']} |")
curve = " → ".join(f"{rss / 1024:,.0f}" for _, rss in runs["current"]["points"])
section = f"""## Lease memory

`bash scripts/lease-rss-bench.sh {int(n)}` ({datetime.date.today()}): the release binary on 127.0.0.1,
{int(n):,} `POST .../resolve {{"provider":"openai"}}` with an agent token and no release (every
lease stays live: 15-minute TTL), from {workers} Python keep-alive clients on the same machine
({os.cpu_count()} cores, {cpu}; load average {load_avg} at the end). Resident memory (VmRSS)
of the host after the first 1,000 resolves and at the end; the last column is the answer to
authorize-by-lease with the first lease at the end, and after a restart of the host on the
same data directory.

| Build | Resolves/s | RSS after 1,000 (MiB) | RSS after {int(n):,} (MiB) | Peak (MiB) | Growth (MiB) | First lease: authorize / after restart |
| --- | ---: | ---: | ---: | ---: | ---: | --- |
{chr(10).join(rows)}

RSS of this build every tenth of the way (MiB): {curve}.
"""
path = "docs/benchmarks.md"
text = open(path).read()
pattern = re.compile(r"## Lease memory\n.*?(?=\n## |\Z)", re.S)
text = pattern.sub(section.rstrip("\n") + "\n", text) if pattern.search(text) else text.rstrip("\n") + "\n\n" + section
open(path, "w").write(text)
print(section)
PY
