"""nginx from Debian in front of test nodes, on a free loopback port, stopped by its PID."""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from pathlib import Path

from tests.support.services import ServiceError, free_port, stop_process, wait_port

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE = ROOT / "deploy" / "nginx.conf.template"


def render(run_dir: Path, port: int, upstream_ports: list[int]) -> str:
    upstreams = "\n".join(
        f"        server 127.0.0.1:{p} max_fails=1 fail_timeout=3s;" for p in upstream_ports
    )
    return (TEMPLATE.read_text().replace("@RUN_DIR@", str(run_dir)).replace("@PORT@", str(port))
            .replace("@UPSTREAMS@", upstreams))


class Nginx:
    def __init__(self, upstream_ports: list[int]) -> None:
        binary = shutil.which("nginx") or "/usr/sbin/nginx"
        if not Path(binary).exists():
            raise ServiceError("nginx is not installed")
        self.binary = binary
        self.port = free_port()
        self.dir = Path(tempfile.mkdtemp(prefix="palimpsest-nginx-"))
        self.dir.chmod(0o755)
        self.conf = self.dir / "nginx.conf"
        self.conf.write_text(render(self.dir, self.port, upstream_ports))
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}"

    def start(self) -> Nginx:
        self.process = subprocess.Popen(
            [self.binary, "-p", str(self.dir), "-c", str(self.conf), "-g", "daemon off;"],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        )
        wait_port(self.port, 10, self.process)
        return self

    def stop(self) -> None:
        if self.process is not None:
            stop_process(self.process)
            self.process = None
        shutil.rmtree(self.dir, ignore_errors=True)
