"""`klaxon up`: the api, the worker and the web app as child processes, supervised.

Prepares the store first (migrations, default rules, demo history when asked and the store is
empty), waits until the API answers, prints where everything is, and stops all three together:
on Ctrl-C, on SIGTERM, or when any one of them exits.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import httpx

from engine.config import ROOT, Settings


@dataclass
class Child:
    name: str
    proc: subprocess.Popen[bytes]


def _spawn(name: str, args: list[str], env: dict[str, str]) -> Child:
    return Child(name, subprocess.Popen([sys.executable, "-m", "engine", *args], env=env, cwd=ROOT))


def wait_ready(url: str, timeout: float = 60.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{url}/health/ready", timeout=2).status_code == 200:
                return True
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    return False


def run_up(
    settings: Settings,
    *,
    api_port: int,
    ui_port: int,
    host: str = "127.0.0.1",
    with_ui: bool = True,
) -> int:
    env = {**os.environ, "KLAXON_API_URL": f"http://{host}:{api_port}"}
    children = [
        _spawn("api", ["api", "--host", host, "--port", str(api_port)], env),
        _spawn("worker", ["worker"], env),
    ]
    if with_ui:
        children.append(_spawn("ui", ["ui", "--host", host, "--port", str(ui_port)], env))
    stopping = False

    def stop(*_: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    try:
        if not wait_ready(f"http://{host}:{api_port}"):
            print("klaxon: the API did not become ready within 60 s", file=sys.stderr)
            return 1
        print(
            f"\nKlaxon is running on {Path(settings.database_url.split('///')[-1]).name if 'sqlite' in settings.database_url else 'PostgreSQL'}:"
        )
        print(f"  web app   http://{host}:{ui_port}" if with_ui else "  web app   (not started)")
        print(f"  API       http://{host}:{api_port}/api/v1/docs")
        print("  worker    running the rules (logs below)")
        print("Press Ctrl-C to stop.\n", flush=True)
        while not stopping:
            for child in children:
                code = child.proc.poll()
                if code is not None:
                    print(
                        f"klaxon: the {child.name} process exited ({code}); stopping the others",
                        file=sys.stderr,
                    )
                    return code or 1
            time.sleep(0.5)
        return 0
    finally:
        for child in children:
            if child.proc.poll() is None:
                child.proc.terminate()
        for child in children:
            try:
                child.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                child.proc.kill()
