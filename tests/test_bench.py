"""scripts/bench.sh --quick: runs end to end, loses nothing, and writes every figure (timings not checked)."""

import json
import os
import subprocess

from conftest import ROOT, clean_env


def test_the_quick_benchmark_reports_every_figure_and_loses_nothing(tmp_path):
    out = tmp_path / "bench.json"

    result = subprocess.run(["bash", os.path.join(ROOT, "scripts/bench.sh"), "--quick", "--json", str(out)],
                            env=clean_env(), capture_output=True, text=True, timeout=300)

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
    assert set(figures["machine"]) >= {"cpus", "platform", "python"}
