"""Starting and talking to the benchmark processes (``benchmarks.agent``) and workers.

Each variant runs in its own long-lived process with its own settings, so "library not
installed" really means not installed, and variants can alternate round by round.
Their stderr goes to a log file per process; its tail is shown when one fails.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent


class AgentError(RuntimeError):
    pass


def _tail(path: Path, lines: int = 30) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


class Agent:
    """One benchmark process; ``call(op, **args)`` runs an operation of benchmarks.ops."""

    def __init__(self, variant: str, env: dict[str, str], log_path: Path) -> None:
        self.variant = variant
        self.log_path = log_path
        self._log = log_path.open("w")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "benchmarks.agent"],
            cwd=REPO,
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._log,
            text=True,
        )
        if self._receive("start") != "ready":
            raise AgentError(f"{variant} process did not start")

    def call(self, op: str, **args: Any) -> Any:
        assert self.process.stdin is not None
        try:
            self.process.stdin.write(json.dumps({"op": op, "args": args}) + "\n")
            self.process.stdin.flush()
        except BrokenPipeError:
            pass  # reported by _receive with the log's tail
        return self._receive(op)

    def _receive(self, op: str) -> Any:
        assert self.process.stdout is not None
        line = self.process.stdout.readline()
        if not line:
            self.process.wait(timeout=10)
            raise AgentError(
                f"the {self.variant} process exited ({self.process.returncode}) during {op}; "
                f"its log ({self.log_path}) ends with:\n{_tail(self.log_path)}"
            )
        answer = json.loads(line)
        if not answer["ok"]:
            raise AgentError(f"{op} failed in the {self.variant} process:\n{answer['error']}")
        return answer["result"]

    def close(self) -> None:
        """An idle agent exits when its stdin closes; one still busy (the run was
        interrupted mid-request) is terminated, then killed."""
        if self.process.poll() is None:
            assert self.process.stdin is not None
            self.process.stdin.close()
            for stop in (None, self.process.terminate, self.process.kill):
                if stop is not None:
                    stop()
                try:
                    self.process.wait(timeout=5)
                    break
                except subprocess.TimeoutExpired:
                    continue
        self._log.close()


class AgentPool:
    """One agent per variant, started on first use, all closed at the end."""

    def __init__(self, database: dict[str, Any], log_dir: Path) -> None:
        self.database = database
        self.log_dir = log_dir
        self.agents: dict[str, Agent] = {}

    def env(self, variant: str, refresh_mode: str = "manual") -> dict[str, str]:
        env = dict(os.environ)
        env.update(
            DJANGO_SETTINGS_MODULE="benchmarks.project.settings",
            LIVE_MATVIEW_BENCH_VARIANT=variant,
            LIVE_MATVIEW_BENCH_DB=json.dumps(self.database),
            LIVE_MATVIEW_BENCH_REFRESH_MODE=refresh_mode,
            PYTHONPATH=os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")])),
        )
        return env

    def get(self, variant: str) -> Agent:
        if variant not in self.agents:
            log_path = self.log_dir / f"{variant}.log"
            self.agents[variant] = Agent(variant, self.env(variant), log_path)
        return self.agents[variant]

    def restart(self, *variants: str) -> None:
        """Fresh processes (and database sessions) for ``variants``.

        A session that ran thousands of REFRESH ... CONCURRENTLY (each makes and drops
        temporary tables) gets measurably slower; scenarios that compare refreshes across
        processes start them all fresh so none carries that handicap.
        """
        for variant in variants:
            agent = self.agents.pop(variant, None)
            if agent is not None:
                agent.close()

    def close(self) -> None:
        for agent in self.agents.values():
            agent.close()
        self.agents.clear()


class Worker:
    """A ``live_matview_worker`` process of the benchmark project (trigger mode)."""

    BANNER = "worker on database"

    def __init__(self, pool: AgentPool, *, listen: bool, interval: float, name: str) -> None:
        self.log_path = pool.log_dir / f"worker-{name}.log"
        self._log = self.log_path.open("w")
        command = [
            sys.executable,
            "-m",
            "benchmarks.project",
            "live_matview_worker",
            "--interval",
            str(interval),
            "--verbosity",
            "0",
        ]
        if not listen:
            command.append("--no-listen")
        self.process = subprocess.Popen(
            command,
            cwd=REPO,
            env=pool.env("triggers"),
            stdout=self._log,
            stderr=subprocess.STDOUT,
            text=True,
        )
        try:
            self._wait_started()
        except BaseException:  # SIGTERM (SystemExit) while waiting: no orphaned worker
            self.stop()
            raise

    def _wait_started(self, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.BANNER in self.log_path.read_text(errors="replace"):
                time.sleep(0.3)  # it LISTENs right after the banner
                return
            if self.process.poll() is not None:
                break
            time.sleep(0.05)
        raise AgentError(f"the worker did not start; its output:\n{_tail(self.log_path)}")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self._log.close()
