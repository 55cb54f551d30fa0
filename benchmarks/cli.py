"""``python -m benchmarks``: build the data set, run the scenarios, print, save.

Run from the repository root, with the project's virtualenv (``python3 dev.py test``
creates it). Options are listed by ``--help``; the default run takes a few minutes on
two cores, ``--quick`` seconds (the smoke test uses it).
"""

from __future__ import annotations

import argparse
import random
import signal
import sys
import tempfile
import time
import traceback
from datetime import datetime, timezone
from pathlib import Path

from . import config as config_module
from . import plot, report, results
from .agents import REPO, AgentPool
from .database import Admin, configure_django, drop_database, recreate_database, server_settings
from .dataset import Dataset
from .scenarios import BY_KEY, SCENARIOS, Scenario
from .scenarios.common import Context

ALIASES = {str(scenario.number): scenario.key for scenario in SCENARIOS}


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks",
        description="Benchmarks of live_matview (SPEC §6): tables of medians and ratios.",
    )
    parser.add_argument("--quick", action="store_true", help="tiny sizes (seconds; smoke test)")
    parser.add_argument(
        "--rounds", type=int, help="rounds of every scenario (default 5; 2 for 2., 3 for 5.)"
    )
    parser.add_argument(
        "--sizes",
        type=config_module.parse_sizes,
        help="source sizes of scenario 5, e.g. 10k,100k,1M (default 10k,100k)",
    )
    parser.add_argument(
        "--incremental-sizes",
        type=config_module.parse_sizes,
        help="ledger lines of scenario 7, e.g. 10k,100k,1M,5M (default 10k,100k,1M)",
    )
    parser.add_argument(
        "--only",
        help="scenarios to run, by number or name: "
        + ", ".join(f"{s.number}={s.key}" for s in SCENARIOS),
    )
    parser.add_argument("--saves", type=int, help="single-row saves per run (scenario 1)")
    parser.add_argument(
        "--bulk-rows", type=config_module.parse_size, help="rows of the bulk writes (scenario 1)"
    )
    parser.add_argument(
        "--worker-samples", type=int, help="writes timed per worker mode (scenario 4)"
    )
    parser.add_argument(
        "--poll-interval", type=float, help="--interval of the polling-only worker (scenario 4)"
    )
    parser.add_argument("--seed", type=int, help="seed of the random variant order")
    parser.add_argument("--json", type=Path, help="where to write the JSON results")
    parser.add_argument("--no-plot", action="store_true", help="do not draw PNG plots")
    parser.add_argument(
        "--db-name", default="live_matview_bench", help="database to create (dropped after)"
    )
    parser.add_argument("--keep-db", action="store_true", help="do not drop the database")
    return parser.parse_args(argv)


def selected(only: str | None) -> list[str]:
    if not only:
        return [scenario.key for scenario in SCENARIOS]
    keys = []
    for part in only.split(","):
        key = ALIASES.get(part.strip(), part.strip())
        if key not in BY_KEY:
            raise SystemExit(f"--only: unknown scenario {part!r}; choose from {sorted(BY_KEY)}")
        keys.append(key)
    return [scenario.key for scenario in SCENARIOS if scenario.key in keys]


def _plot(done: list[report.ScenarioResult], json_path: Path) -> None:
    """A plot that cannot be drawn never costs the run its tables and JSON."""
    if not plot.available():
        print("plot: skipped (matplotlib is not installed: see benchmarks/requirements.txt)")
        return
    try:
        for path in plot.draw(done, json_path.with_suffix("")):
            print(f"plot: {path}")
    except Exception as exc:  # noqa: BLE001
        print(f"plot: failed ({type(exc).__name__}: {exc})")


def _exit_on_sigterm(signum: int, frame: object) -> None:
    raise SystemExit(128 + signum)  # unwinds through the clean-up below


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    # Stopped with SIGTERM, the run still stops its workers and drops its database.
    signal.signal(signal.SIGTERM, _exit_on_sigterm)
    args = parse_args(argv)
    config = config_module.build(
        args.quick,
        rounds=args.rounds,
        sizes=args.sizes,
        incremental_sizes=args.incremental_sizes,
        saves=args.saves,
        bulk_rows=args.bulk_rows,
        worker_samples=args.worker_samples,
        worker_poll_interval=args.poll_interval,
        seed=args.seed,
    )
    keys = selected(args.only)
    started = datetime.now(timezone.utc)
    maintenance, server = server_settings(REPO)
    bench = configure_django(maintenance, args.db_name)
    recreate_database(args.db_name)
    log_dir = Path(tempfile.mkdtemp(prefix="live_matview_bench_"))
    pool = AgentPool(bench, log_dir)
    admin = Admin()
    try:
        setup = pool.get("triggers").call("setup_schema")
        info = {variant: pool.get(variant).call("info") for variant in ("baseline", "triggers")}
        _print_header(started, info["triggers"], server, args, log_dir)
        ctx = Context(
            config, pool, Dataset(admin, checkpoints=config.checkpoint), random.Random(config.seed)
        )
        done = [_run_scenario(ctx, BY_KEY[key]) for key in keys]
        env = results.environment(server, info)
        env["schema"] = setup
        json_path = args.json or results.default_path(started)
        results.write(json_path, started=started, argv=argv, config=config, env=env, results=done)
        print(f"load average at end: {results.load_average()}; results: {json_path}")
        if not args.no_plot:
            _plot(done, json_path)
    finally:
        pool.close()
        admin.close()
        if not args.keep_db:
            drop_database(args.db_name)
    return 1 if any(result.error for result in done) else 0


def _print_header(
    started: datetime, info: dict, server: str, args: argparse.Namespace, log_dir: Path
) -> None:
    print(f"live_matview benchmarks, {started:%Y-%m-%d %H:%M} UTC")
    print(f"PostgreSQL {info['server_version']} ({server}), database {args.db_name}")
    print(
        f"{info['driver']}, Django {info['django']}, Python {info['python']}, "
        f"{'quick' if args.quick else 'default'} sizes"
    )
    print(f"load average at start: {results.load_average()}; process logs: {log_dir}\n")


def _run_scenario(ctx: Context, scenario: Scenario) -> report.ScenarioResult:
    """Run one scenario and print its table; a failure is reported and the run goes on."""
    result = scenario.result()
    print(f"== {result.heading} ==", file=sys.stderr, flush=True)
    clock = time.monotonic()
    try:
        scenario.run(ctx, result)
    except Exception as exc:  # noqa: BLE001  (shown in its table; the exit code says so)
        result.error = f"{type(exc).__name__}: {exc}"
        traceback.print_exc(file=sys.stderr)
    result.seconds = round(time.monotonic() - clock, 1)
    print(report.render(result) + "\n", flush=True)
    return result
