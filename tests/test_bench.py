"""scripts/bench.sh --quick: runs end to end, loses nothing, and writes every figure (timings not checked)."""

import json
import os
import subprocess
import sys

import bench
from helpers import ONE_AT_A_TIME, ROOT, clean_env


@ONE_AT_A_TIME
def test_the_quick_benchmark_reports_every_figure_and_loses_nothing(tmp_path):
    out = tmp_path / "bench.json"

    result = subprocess.run(
        ["bash", os.path.join(ROOT, "scripts/bench.sh"), "--quick", "--json", str(out)],
        env=clean_env(),
        capture_output=True,
        text=True,
        timeout=300,
    )

    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("| measure | pub.py / sub.py | plain nats-py | ratio | target |")
    figures = json.loads(out.read_text())
    assert figures["quick"] is True and figures["reps"] >= 3
    for size in (16, 1024):
        publish = figures[f"publish_{size}"]
        assert publish["count"] == 20_000 and publish["body_bytes"] == size
        assert set(publish["msgs_per_s"]) == {"pub.py", "plain"} and publish["ratio"] > 0
        assert all(len(runs) == figures["reps"] for runs in publish["seconds"].values())
    subscribe = figures["subscribe"]
    assert subscribe["lost"] == {"sub.py": 0, "plain": 0, "plain async for": 0}
    assert set(subscribe["msgs_per_s"]) == {"sub.py", "plain", "plain async for"}
    one_shot = figures["one_shot"]
    assert set(one_shot["seconds"]) == set(one_shot["peak_rss_mib"]) == {"pub.py", "plain"}
    assert one_shot["peak_rss_mib"]["pub.py"] > 10
    latency = figures["latency"]
    assert latency["lost"] == {"sub.py": 0, "plain": 0}
    for p in ("p50_ms", "p99_ms"):
        assert set(latency[p]) == {"sub.py", "plain"} and all(v > 0 for v in latency[p].values())
    js_publish = figures["jetstream_publish"]
    assert js_publish["count"] == 5_000
    plain = {"plain pipeline", "plain publish_async", "plain windows"}
    assert set(js_publish["msgs_per_s"]) == {"pub.py", *plain}
    on_cluster = figures["jetstream_publish_cluster"]
    assert on_cluster["count"] == 5_000 and on_cluster["replicas"] == 3
    assert set(on_cluster["msgs_per_s"]) == {"pub.py", *plain}
    assert "| JetStream publish 5,000 x 16 B, 3-node cluster, R3 stream" in result.stdout
    for row in (js_publish, on_cluster):
        assert row["ratio"] == row["msgs_per_s"]["pub.py"] / row["msgs_per_s"]["plain pipeline"]
        assert row["ratio_to_publish_async"] == row["msgs_per_s"]["pub.py"] / row["msgs_per_s"]["plain publish_async"]
    memory = figures["jetstream_memory"]
    assert set(memory["peak_rss_mib"]) == {"10000", "100000"} and all(v > 10 for v in memory["peak_rss_mib"].values())
    js_consume = figures["jetstream_consume"]
    assert js_consume["lost"] == {"sub.py": 0, "plain": 0}
    assert set(js_consume["msgs_per_s"]) == {"sub.py", "plain"} and js_consume["ratio"] > 0
    assert set(figures["machine"]) >= {"cpus", "platform", "python"}


def test_peak_memory_is_the_programs_own_not_the_benchmarks():
    ballast = bytearray(200 * 2**20)  # this process is large, as the benchmark is: a child must not inherit that
    ballast[::4096] = b"x" * len(range(0, len(ballast), 4096))

    empty = bench.peak_rss_mib([sys.executable, "-c", "pass"])
    allocating = bench.peak_rss_mib([sys.executable, "-c", "data = b'x' * (100 * 2**20)"])

    assert empty < 15
    assert allocating > 100
    del ballast
