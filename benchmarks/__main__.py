"""Run the benchmarks: ``python -m benchmarks [SUITE|all] [options]`` (the suites are listed below).

`webhooks` (the default) takes the options of `benchmarks/webhooks.py`; `scale-out` needs PostgreSQL.
"""

from __future__ import annotations

import importlib
import sys

SUITES = {
    "webhooks": "benchmarks.webhooks",
    "rendering": "benchmarks.rendering",
    "sender": "benchmarks.sender_rate",
    "scale-out": "benchmarks.scale_out",
    "fence": "benchmarks.fence",
    "interrupt": "benchmarks.interrupt",
    "hostile": "benchmarks.hostile_clients",
    "provider": "benchmarks.provider",
    "provider-path": "benchmarks.provider_path",
    "agno": "benchmarks.side_by_side",
    "startup": "benchmarks.startup",
    "driver": "benchmarks.loadgen",
}


def run(name: str) -> None:
    print(f"\n=== {name} ===", flush=True)
    importlib.import_module(SUITES[name]).main()


if __name__ == "__main__":
    args = sys.argv[1:]
    choice = args.pop(0) if args and args[0] in (*SUITES, "all") else "webhooks"
    sys.argv = [sys.argv[0], *args]
    if choice == "all":
        for name in ("rendering", "webhooks", "provider", "sender", "fence", "scale-out"):
            try:
                run(name)
            except ModuleNotFoundError as exc:
                print(f"(skipped: {exc})")
    else:
        run(choice)
