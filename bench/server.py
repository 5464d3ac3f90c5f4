"""Start a gateway process for a benchmark and watch its CPU and memory through /proc."""

from __future__ import annotations

import contextlib
import os
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class ProcessSampler:
    """Samples a process's CPU seconds and RSS once per ``interval`` in a thread."""

    pid: int
    interval: float = 0.5
    samples: list[tuple[float, float, int]] = field(default_factory=list)  # (time, cpu seconds, rss bytes)

    def __post_init__(self) -> None:
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> "ProcessSampler":
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()

    def _read(self) -> tuple[float, int] | None:
        try:
            stat = Path(f"/proc/{self.pid}/stat").read_text().rsplit(")", 1)[1].split()
            status = Path(f"/proc/{self.pid}/status").read_text()
        except OSError:
            return None
        ticks = os.sysconf("SC_CLK_TCK")
        cpu = (int(stat[11]) + int(stat[12])) / ticks
        rss = next(int(line.split()[1]) * 1024 for line in status.splitlines() if line.startswith("VmRSS:"))
        return cpu, rss

    def _run(self) -> None:
        while not self._stop.is_set():
            reading = self._read()
            if reading is not None:
                self.samples.append((time.monotonic(), *reading))
            self._stop.wait(self.interval)

    def summary(self, since: float = 0.0) -> dict[str, float]:
        """CPU use (in cores) and RSS over the samples after ``since``."""
        window = [s for s in self.samples if s[0] >= since]
        if len(window) < 2:
            return {"cpu_cores": float("nan"), "rss_mb_max": float("nan"), "rss_mb_last": float("nan")}
        (t0, c0, _), (t1, c1, _) = window[0], window[-1]
        return {"cpu_cores": (c1 - c0) / max(1e-9, t1 - t0),
                "rss_mb_max": max(s[2] for s in window) / 2**20, "rss_mb_last": window[-1][2] / 2**20}


@dataclass
class SpawnedGateway:
    url: str  # wss://127.0.0.1:PORT/v1/stream
    http: str
    pid: int
    cafile: Path
    process: subprocess.Popen

    def ssl_context(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=str(self.cafile))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def spawn_gateway(flags: list[str], ready_timeout: float = 300, log_path: Path | None = None,
                  ) -> Iterator[SpawnedGateway]:
    """``python -m gateway`` on a free port with a fresh self-signed certificate; stopped on exit."""
    port = _free_port()
    certs = Path(tempfile.mkdtemp(prefix="bench-certs-"))
    cmd = [sys.executable, "-m", "gateway", "--host", "127.0.0.1", "--port", str(port),
           "--certs-dir", str(certs), "--log-level", "info" if log_path else "warning", *flags]
    log_file = open(log_path, "wb") if log_path else None  # noqa: SIM115 - closed below
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=log_file)
    gateway = SpawnedGateway(f"wss://127.0.0.1:{port}/v1/stream", f"https://127.0.0.1:{port}", proc.pid,
                             certs / "localhost.pem", proc)
    try:
        deadline = time.monotonic() + ready_timeout
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"the gateway exited with {proc.returncode}: {' '.join(cmd)}")
            try:
                with urllib.request.urlopen(gateway.http + "/readyz", context=gateway.ssl_context(), timeout=2) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise TimeoutError("the gateway did not become ready")
            time.sleep(0.5)
        yield gateway
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
        if log_file is not None:
            log_file.close()
