"""Start the dashboard as a subprocess on a free local port (browser tests and benchmarks).

``with DashboardServer(msmv_home) as url: ...`` (``secrets_file=`` for another secrets.toml) runs ``streamlit run dashboard/app.py`` from the
repository root (so ``.streamlit/config.toml`` applies), waits for Streamlit's health endpoint and
stops the process group on exit. The server log is kept for error messages.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path
from types import TracebackType

from dashboard.registry import ROOT

HEALTH_PATH = "/_stcore/health"  # Streamlit's readiness endpoint
START_TIMEOUT_S = 180.0
STOP_TIMEOUT_S = 10.0


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class DashboardServer:
    """The dashboard served from ``msmv_home`` on ``port`` (a free one when ``None``)."""

    def __init__(self, msmv_home: str | os.PathLike[str], port: int | None = None,
                 *, start_timeout_s: float = START_TIMEOUT_S,
                 secrets_file: str | os.PathLike[str] | None = None,
                 app: str | os.PathLike[str] | None = None) -> None:
        self.msmv_home = Path(msmv_home)
        # another Streamlit script instead of dashboard/app.py (benchmarks/pages.py serves a bare floor app)
        self.app = Path(app) if app is not None else ROOT / "dashboard" / "app.py"
        # another secrets.toml instead of .streamlit/secrets.toml (e.g. one with a login [auth] section)
        self.secrets_file = Path(secrets_file) if secrets_file is not None else None
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.start_timeout_s = start_timeout_s
        self._proc: subprocess.Popen[bytes] | None = None
        self._log = tempfile.NamedTemporaryFile(prefix="msmv-dashboard-", suffix=".log", delete=False)

    @property
    def pid(self) -> int | None:
        """The Streamlit server's process id while it runs (benchmarks read its CPU time)."""
        return self._proc.pid if self._proc is not None and self._proc.poll() is None else None

    def log_text(self) -> str:
        return Path(self._log.name).read_text(errors="replace")

    def start(self) -> str:
        env = {**os.environ, "MSMV_HOME": str(self.msmv_home)}
        cmd = [sys.executable, "-m", "streamlit", "run", str(self.app),
               "--server.address", "127.0.0.1", "--server.port", str(self.port), "--server.headless", "true",
               "--browser.gatherUsageStats", "false"]
        if self.secrets_file is not None:
            cmd += ["--secrets.files", str(self.secrets_file)]
        self._proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=self._log, stderr=subprocess.STDOUT,
                                      start_new_session=True)
        deadline = time.monotonic() + self.start_timeout_s
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                raise RuntimeError(f"the dashboard exited with code {self._proc.returncode}:\n{self.log_text()}")
            try:
                with urllib.request.urlopen(self.url + HEALTH_PATH, timeout=2) as resp:
                    if resp.status == 200:
                        return self.url
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                time.sleep(0.3)
        self.stop()
        raise TimeoutError(f"the dashboard did not answer on {self.url} within {self.start_timeout_s:.0f} s:\n"
                           f"{self.log_text()}")

    def stop(self) -> None:
        if self._proc is None or self._proc.poll() is not None:
            return
        os.killpg(self._proc.pid, signal.SIGTERM)  # our own session: streamlit and nothing else
        try:
            self._proc.wait(timeout=STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            os.killpg(self._proc.pid, signal.SIGKILL)
            self._proc.wait()

    def __enter__(self) -> str:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()
