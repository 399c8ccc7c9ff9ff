"""A fleet of simulated tablets against real gunicorn processes, faults on; the checker must pass.

``LIANHU_SOAK=1`` (``make soak``) runs a longer, larger simulation through the same test.
"""
from __future__ import annotations

import os
import urllib.request

from client.simulate import SimConfig, Simulation

SOAK = os.environ.get("LIANHU_SOAK") == "1"


def _server_log_tail(live_server, lines: int = 60) -> str:
    return "\n".join(live_server["log"].read_text(errors="replace").splitlines()[-lines:])


def test_fleet_with_faults_converges(live_server, tmp_path):
    config = SimConfig(
        servers=[live_server["url"]], admin_user=live_server["admin"], admin_password=live_server["password"],
        tablets=12 if SOAK else 6, members=5 if SOAK else 3, households_per_member=6 if SOAK else 4,
        rounds=int(os.environ.get("LIANHU_SOAK_ROUNDS", "60")) if SOAK else 8,
        drop_request=0.1, drop_response=0.1, slow=0.1, skew_hours=6, seed=None if SOAK else 4,
        workdir=str(tmp_path))
    simulation = Simulation(config)
    try:
        report = simulation.run()
    except Exception:
        print(_server_log_tail(live_server))  # the server's side of a failed call
        raise
    print(report.render())
    assert report.ok, report.render() + "\n" + _server_log_tail(live_server)
    # the faults really happened, and the world really moved
    assert report.stats["network dropped answers"] > 0
    assert report.stats["network dropped requests"] > 0
    assert report.stats["re-pairings"] > 0 and report.stats["online edits"] > 0
    assert report.stats["ops recorded"] > 50
    assert report.stats["largest clock skew (minutes)"] >= 60
    # photos went up through cut pieces and lost answers, and the checker read each one back
    assert report.stats["network cut uploads"] > 0 and report.stats["network lost upload answers"] > 0
    assert report.stats["photos recorded"] > 5 and report.stats["photos read back"] > 0
    # and the server is still alive, with no 500 in its log
    with urllib.request.urlopen(live_server["url"] + "/healthz", timeout=5) as response:
        assert response.status == 200
    assert b"Traceback" not in live_server["log"].read_bytes()
