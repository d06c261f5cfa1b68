"""Run the Autobahn|Testsuite (wstest fuzzingclient) against hubbub's echo endpoint.

    python scripts/autobahn.py --suite quick   # 373 cases, ~1-2 minutes (run by `make test`)
    python scripts/autobahn.py --suite full    # all 517 cases (`make autobahn`)

Each shard starts its own ``hubbub serve`` on a free port (max message size raised to 20 MiB for
the 16 MiB messages of cases 9.*) and its own wstest; shards run in parallel. Prints one line:

    autobahn: N cases, N OK, N NON-STRICT, N INFORMATIONAL, N UNIMPLEMENTED, N FAILED

and exits non-zero when any case FAILED or when the report holds fewer cases than the suite has
(wstest exits 0 even when it could not reach the server).
"""

from __future__ import annotations

import argparse
import json
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.support.server import ServerProcess  # noqa: E402

AGENT = "hubbub"
CATEGORIES = ("OK", "NON-STRICT", "INFORMATIONAL", "UNIMPLEMENTED", "FAILED")
#: The large-message variants of the compression cases: 12.x.7-18 and 13.x.7-18.
LARGE_DEFLATE = [f"{group}.*.{n}" for group in (12, 13) for n in range(7, 19)]

#: suite -> (shards as (cases, exclude-cases), number of cases autobahntestsuite 25.10.1 runs)
SUITES: dict[str, tuple[list[tuple[list[str], list[str]]], int]] = {
    # 13.* (the compression cases with client context takeover) take half the time of the
    # rest: two shards in parallel halve the run (62 s -> about 35 s).
    "quick": ([(["13.*"], LARGE_DEFLATE), (["*"], ["13.*", *LARGE_DEFLATE])], 373),
    "full": ([(["12.*"], []), (["*"], ["12.*"])], 517),
}


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--suite", choices=sorted(SUITES), default="quick")
    parser.add_argument("--venv", type=Path, default=ROOT / ".venv-autobahn")
    parser.add_argument("--outdir", type=Path, default=ROOT / "reports" / "autobahn")
    args = parser.parse_args()

    wstest = args.venv / "bin" / "wstest"
    if not wstest.exists():
        print(f"autobahn: {wstest} is missing; run `make autobahn-venv`", file=sys.stderr)
        return 2
    shards, expected = SUITES[args.suite]
    outdir = args.outdir / args.suite
    outdir.mkdir(parents=True, exist_ok=True)

    servers: list[ServerProcess] = []
    clients: list[subprocess.Popen[bytes]] = []
    started = time.monotonic()
    # SIGTERM (a test's timeout) ends the run through the finally below, which stops the
    # servers and wstest instead of leaving them running.
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))
    try:
        for i, (cases, exclude) in enumerate(shards):
            shard_dir = outdir / f"shard{i}"
            shard_dir.mkdir(exist_ok=True)
            (shard_dir / "index.json").unlink(missing_ok=True)
            server = ServerProcess(
                [
                    "--max-message-size",
                    str(20 * 1024 * 1024),
                    "--data-dir",
                    str(shard_dir / "data"),
                ],
                {"HUBBUB_LOG_LEVEL": "warning"},
                shard_dir / "server.log",
            )
            servers.append(server)
            spec = {
                "outdir": str(shard_dir),
                "servers": [{"agent": AGENT, "url": server.ws + "/"}],
                "cases": cases,
                "exclude-cases": exclude,
                "exclude-agent-cases": {},
            }
            spec_path = shard_dir / "spec.json"
            spec_path.write_text(json.dumps(spec, indent=2))
            with (shard_dir / "wstest.log").open("wb") as log:
                clients.append(
                    subprocess.Popen(
                        [str(wstest), "-m", "fuzzingclient", "-s", str(spec_path)],
                        stdout=log,
                        stderr=subprocess.STDOUT,
                        cwd=shard_dir,
                    )
                )
        for client in clients:
            client.wait()
    finally:
        for client in clients:
            if client.poll() is None:
                client.kill()
            client.wait()
        for server in servers:
            try:
                server.terminate()
            finally:
                server.kill()

    results: dict[str, dict[str, str]] = {}
    for i in range(len(shards)):
        index = outdir / f"shard{i}" / "index.json"
        if index.exists():
            results.update(json.loads(index.read_text()).get(AGENT, {}))
    counts: Counter[str] = Counter()
    failed = []
    for case_id, result in results.items():
        verdicts = (result.get("behavior"), result.get("behaviorClose"))
        verdict = "FAILED" if "FAILED" in verdicts else str(result.get("behavior"))
        counts[verdict] += 1
        if verdict == "FAILED":
            failed.append(case_id)
    summary = ", ".join(f"{counts[c]} {c}" for c in CATEGORIES)
    elapsed = time.monotonic() - started
    print(f"autobahn: {len(results)} cases, {summary} ({args.suite} suite, {elapsed:.0f} s)")
    others = set(counts) - set(CATEGORIES)
    if others:
        print(f"autobahn: unexpected verdicts {sorted(others)}", file=sys.stderr)
        return 1
    if failed:
        print("autobahn: FAILED cases: " + " ".join(sorted(failed)), file=sys.stderr)
        return 1
    if len(results) < expected:
        print(
            f"autobahn: only {len(results)} of {expected} cases ran; see {outdir}", file=sys.stderr
        )
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
