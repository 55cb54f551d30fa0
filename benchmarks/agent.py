"""A benchmark process: ``python -m benchmarks.agent``, one per Django configuration.

The orchestrator keeps one agent per variant alive for the whole run and sends it
requests, one JSON object per line on stdin; each answer is one JSON line. Keeping the
processes alive lets variants alternate round by round without paying Django's start-up
each time, and keeps each variant's caches as warm as in a real server process.

Stdout carries only the protocol: anything else printed goes to stderr.
"""

from __future__ import annotations

import json
import os
import sys
import traceback
from typing import Any


def _serve(requests: Any, answers: Any) -> None:
    from benchmarks.ops import OPERATIONS

    for line in requests:
        if not line.strip():
            continue
        request = json.loads(line)
        try:
            result = OPERATIONS[request["op"]](**request.get("args", {}))
            answer = {"ok": True, "result": result}
        except Exception:  # noqa: BLE001  (reported to the orchestrator, which raises)
            answer = {"ok": False, "error": traceback.format_exc()}
        answers.write(json.dumps(answer) + "\n")
        answers.flush()


def main() -> int:
    answers = os.fdopen(os.dup(sys.stdout.fileno()), "w")
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())  # stray prints must not break the protocol
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "benchmarks.project.settings")
    import django

    django.setup()
    answers.write(json.dumps({"ok": True, "result": "ready"}) + "\n")
    answers.flush()
    _serve(sys.stdin, answers)
    return 0


if __name__ == "__main__":
    sys.exit(main())
