#!/usr/bin/env python3
"""Search latency and bytes read over two store shapes, for one or more tracefusion binaries.

Each binary generates the same traces (same seed) twice, in the block format it writes: as one
big block, and as many small blocks. Then it serves each store (`tracefusion serve`) and runs
each search `--runs` times through the HTTP API (warm: the first run is not counted), and
looks up 50 traces by id. Prints the median latency, inspectedBytes and inspectedSpans per
search, the median trace-by-id latency and the server's peak resident memory, as Markdown.

  python3 bench/store_shapes.py --binary before=/path/a --binary after=/path/b
"""

import argparse
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request

SEARCHES = [
    ("attribute_match", '{ span.http.route = "/cart" }'),
    ("attribute_no_match", '{ span.http.route = "/no-such-route" }'),
    ("intrinsic", "{ kind = server && status = error }"),
    ("resource", '{ resource.service.name = "payment" }'),
    ("unscoped_map", '{ .db.system = "redis" }'),
    ("or", '{ .db.system = "redis" } || { .messaging.system = "kafka" }'),
    ("and", '{ .db.system = "redis" } && { status = error }'),
    ("regex", '{ name =~ "GET /product.*" }'),
    ("duration", "{ duration > 500ms }"),
    ("count", "{ status = error } | count() > 1"),
    ("structural", '{ resource.service.name = "frontend" } >> { status = error }'),
    ("select", "{ status = error } | select(span.http.route, resource.cloud.region)"),
]


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def write_config(path, blocks, wal, port):
    with open(path, "w") as f:
        f.write(
            f"""server:
  http_listen_port: {port}
  log_level: warn
distributor:
  receivers:
    otlp:
      protocols:
        grpc:
          endpoint: 127.0.0.1:{free_port()}
        http:
          endpoint: 127.0.0.1:{free_port()}
storage:
  trace:
    local:
      path: {blocks}
    wal:
      path: {wal}
"""
        )


def generate(binary, config, traces, per_block):
    subprocess.run(
        [binary, "generate", "--config", config, "--traces", str(traces), "--seed", "42",
         "--batch", str(per_block)],
        check=True, stdout=subprocess.DEVNULL,
    )


def peak_rss_mb(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return 0.0


def measure(binary, config, port, runs, limit):
    server = subprocess.Popen([binary, "serve", "--config", config],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        base = f"http://127.0.0.1:{port}"
        for _ in range(600):
            try:
                if urllib.request.urlopen(base + "/ready", timeout=1).read().strip() == b"ready":
                    break
            except OSError:
                pass
            time.sleep(0.1)
        else:
            raise SystemExit(f"{binary} did not become ready")
        rows = {}
        for name, query in SEARCHES:
            url = base + "/api/search?" + urllib.parse.urlencode({"q": query, "limit": limit})
            times = []
            body = None
            for run in range(runs + 1):
                started = time.perf_counter()
                body = json.load(urllib.request.urlopen(url, timeout=300))
                if run > 0:
                    times.append((time.perf_counter() - started) * 1000)
            metrics = body.get("metrics", {})
            rows[name] = (
                statistics.median(times),
                int(metrics.get("inspectedBytes", 0)),
                int(metrics.get("inspectedSpans", 0)),
                len(body.get("traces", [])),
            )
        url = base + "/api/search?" + urllib.parse.urlencode({"q": "{ }", "limit": 50})
        ids = [t["traceID"] for t in json.load(urllib.request.urlopen(url, timeout=300))["traces"]]
        times = []
        for run, trace_id in enumerate(ids[:5] + ids):
            started = time.perf_counter()
            urllib.request.urlopen(base + "/api/v2/traces/" + trace_id, timeout=60).read()
            if run >= 5:
                times.append((time.perf_counter() - started) * 1000)
        rows["trace_by_id"] = (statistics.median(times), 0, 0, len(ids))
        rows["peak_rss_mb"] = peak_rss_mb(server.pid)
        return rows
    finally:
        server.terminate()
        server.wait()


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--binary", action="append", required=True, help="NAME=PATH")
    parser.add_argument("--traces", type=int, default=60000)
    parser.add_argument("--blocks", type=int, default=100, help="blocks of the many-blocks store")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--limit", type=int, default=20, help="traces per search")
    parser.add_argument("--stores", help="keep the generated stores here and reuse them (a store "
                        "is named by shape, binary name and traces: reuse only for the same build)")
    args = parser.parse_args()
    binaries = [b.split("=", 1) for b in args.binary]
    with tempfile.TemporaryDirectory(dir=os.environ.get("TMPDIR")) as dir:
        stores = args.stores or dir
        os.makedirs(stores, exist_ok=True)
        shapes = [("one block", args.traces), (f"{args.blocks} blocks", -(-args.traces // args.blocks))]
        results = {}
        for shape, per_block in shapes:
            for name, binary in binaries:
                store = os.path.join(stores, f"{shape}-{name}-{args.traces}".replace(" ", "-"))
                port = free_port()
                config = os.path.join(store + ".yaml")
                write_config(config, os.path.join(store, "blocks"), os.path.join(store, "wal"), port)
                if not os.path.isdir(os.path.join(store, "blocks")):
                    generate(binary, config, args.traces, per_block)
                print(f"{shape}: {name}", file=sys.stderr)
                results[(shape, name)] = measure(binary, config, port, args.runs, args.limit)
                if not args.stores:
                    shutil.rmtree(store)
        names = [n for n, _ in binaries]
        for shape, _ in shapes:
            print(f"\n{shape}, {args.traces} traces, median of {args.runs} warm runs, limit {args.limit}\n")
            print("| search | " + " | ".join(f"{n} ms, MB read, spans read" for n in names) + " | traces |")
            print("|---|" + "---:|" * len(names) + "---:|")
            for search, _ in SEARCHES:
                cells = []
                for n in names:
                    ms, read, spans, _ = results[(shape, n)][search]
                    cells.append(f"{ms:.1f}, {read / 1e6:.2f}, {spans}")
                found = results[(shape, names[-1])][search][3]
                print(f"| {search} | " + " | ".join(cells) + f" | {found} |")
            by_id = " | ".join(f"{results[(shape, n)]['trace_by_id'][0]:.1f} ms" for n in names)
            print(f"| trace by id (median of 50) | {by_id} | |")
            rss = " | ".join(f"{results[(shape, n)]['peak_rss_mb']:.0f} MB" for n in names)
            print(f"| server peak memory | {rss} | |")


if __name__ == "__main__":
    main()
