"""The deployment kit passes its own tools' syntax checks: ``nginx -t`` and ``systemd-analyze verify``
(skipped, with the reason, where the tool is not installed: CI installs nginx), and the gunicorn config loads."""
from __future__ import annotations

import os
import runpy
import shutil
import subprocess
from pathlib import Path

import pytest

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
UNITS = sorted((DEPLOY / "systemd").glob("*.service")) + sorted((DEPLOY / "systemd").glob("*.timer"))


def _self_signed(folder: Path) -> tuple[Path, Path]:
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=test",
                    "-keyout", str(key), "-out", str(cert)], check=True, capture_output=True)
    return cert, key


@pytest.mark.skipif(not shutil.which("nginx"), reason="nginx is not installed (CI: apt-get install -y nginx)")
@pytest.mark.skipif(not shutil.which("openssl"), reason="openssl is needed for a throwaway certificate")
def test_nginx_site_passes_nginx_t(tmp_path):
    cert, key = _self_signed(tmp_path)
    site = (DEPLOY / "nginx" / "lianhu.conf").read_text()
    site = site.replace("/etc/ssl/lianhu/fullchain.pem", str(cert)).replace("/etc/ssl/lianhu/privkey.pem", str(key))
    # unprivileged ports, so the check runs as any user
    site = site.replace("listen 80;", "listen 127.0.0.1:18080;").replace("listen [::]:80;", "")
    site = site.replace("listen 443 ssl http2;", "listen 127.0.0.1:18443 ssl http2;").replace(
        "listen [::]:443 ssl http2;", "")
    (tmp_path / "site.conf").write_text(site)
    (tmp_path / "nginx.conf").write_text(f"""
pid {tmp_path}/nginx.pid;
error_log {tmp_path}/error.log;
events {{}}
http {{
    access_log off;
    client_body_temp_path {tmp_path}/body; proxy_temp_path {tmp_path}/proxy;
    fastcgi_temp_path {tmp_path}/fastcgi; uwsgi_temp_path {tmp_path}/uwsgi; scgi_temp_path {tmp_path}/scgi;
    include {tmp_path}/site.conf;
}}
""")
    result = subprocess.run(["nginx", "-t", "-c", str(tmp_path / "nginx.conf"), "-p", str(tmp_path)],
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert "syntax is ok" in result.stderr


@pytest.mark.skipif(not shutil.which("systemd-analyze"), reason="systemd-analyze is not installed")
@pytest.mark.parametrize("unit", UNITS, ids=lambda p: p.name)
def test_systemd_units_pass_systemd_analyze_verify(unit, tmp_path):
    # verify checks that ExecStart binaries exist: point them at this machine's interpreter's folder
    bin_dir = Path(os.environ.get("VIRTUAL_ENV") or Path(shutil.which("python3")).parent.parent) / "bin"
    text = unit.read_text().replace("/opt/lianhu/.venv/bin", str(bin_dir))
    for tool in ("gunicorn", "flask"):
        if not (bin_dir / tool).exists():
            (tmp_path / "bin").mkdir(exist_ok=True)
            stub = tmp_path / "bin" / tool
            stub.write_text("#!/bin/sh\n")
            stub.chmod(0o755)
            text = text.replace(f"{bin_dir}/{tool}", str(stub))
    copy = tmp_path / unit.name
    copy.write_text(text)
    if unit.suffix == ".timer":  # a timer is verified with the service it starts
        service = unit.with_suffix(".service")
        (tmp_path / service.name).write_text(service.read_text().replace("/opt/lianhu/.venv/bin", str(bin_dir)))
    result = subprocess.run(["systemd-analyze", "verify", "--man=no", str(copy)], capture_output=True, text=True,
                            cwd=tmp_path)
    # on a machine where systemd is not PID 1 (containers), verify still parses; only unit errors count
    problems = [line for line in (result.stderr + result.stdout).splitlines()
                if unit.name in line or "Unknown" in line or "Invalid" in line or "Failed to parse" in line]
    assert not problems, "\n".join(problems)
    assert result.returncode == 0, result.stderr


def test_gunicorn_config_loads_with_the_hooks(tmp_path, monkeypatch):
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path / "metrics"))
    monkeypatch.setenv("GUNICORN_WORKERS", "3")
    config = runpy.run_path(str(DEPLOY / "gunicorn.conf.py"))
    assert config["workers"] == 3 and config["timeout"] > 0 and config["graceful_timeout"] > 0
    assert config["accesslog"] is None  # the app's own JSON line replaces it (paths may carry names)
    (tmp_path / "metrics").mkdir()
    (tmp_path / "metrics" / "gauge_livesum_4242.db").write_bytes(b"")
    (tmp_path / "metrics" / "counter_4242.db").write_bytes(b"")
    config["child_exit"](None, type("Worker", (), {"pid": 4242})())
    assert sorted(p.name for p in (tmp_path / "metrics").iterdir()) == ["counter_4242.db"]
    config["on_starting"](None)
    assert list((tmp_path / "metrics").iterdir()) == []
