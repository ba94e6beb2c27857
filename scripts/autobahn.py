#!/usr/bin/env python3
"""Run Autobahn|Testsuite cases against a WebSocket server, with kosoku as the fuzzing client.

Used by crates/server/tests/autobahn.rs; also runnable by hand against any server:

    target/pyvenv/bin/python scripts/autobahn.py ws://127.0.0.1:8080/echo
    target/pyvenv/bin/python scripts/autobahn.py ws://127.0.0.1:8080/echo --case '9.*' --case 5.1

Output on stdout, one tab-separated record per line (tabs and newlines inside text are
replaced by spaces), so the Rust test can parse it with std alone:

    case    ID  BEHAVIOR  BEHAVIOR_CLOSE  DURATION_MS  DESCRIPTION  RESULT  RESULT_CLOSE
    summary TOTAL  PASSED  FAILED
    error   MESSAGE            (the run did not complete)

BEHAVIOR is kosoku's verdict on the message exchange (OK, NON-STRICT, INFORMATIONAL, FAILED,
UNIMPLEMENTED, ERROR); BEHAVIOR_CLOSE its verdict on the closing handshake (OK, INFORMATIONAL,
FAILED, FAILED BY CLIENT, WRONG CODE, UNCLEAN). A case passes when both are OK, NON-STRICT or
INFORMATIONAL (the same rule as kosoku's CaseResult.passed).

Exit status: 0 every case passed, 1 some case failed, 2 the run did not complete.
Autobahn's JSON/HTML report is written to --report-dir when given.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import sys

# Sections 1-10 of the Autobahn case set: framing, pings/pongs, reserved bits, opcodes,
# fragmentation, UTF-8, close handling, limits/performance, auto-fragmentation.
# (The case set has no section 8; 12 and 13 are permessage-deflate, which we don't offer.)
DEFAULT_CASES = ["1.*", "2.*", "3.*", "4.*", "5.*", "6.*", "7.*", "9.*", "10.*"]

PASSING = {"OK", "NON-STRICT", "INFORMATIONAL"}


def _clean(text: object) -> str:
    """One line of plain text: case descriptions carry a little HTML (<b>, <br>)."""
    text = re.sub(r"<[^>]+>", " ", str(text if text is not None else ""))
    return " ".join(text.split())


def _emit(*fields: object) -> None:
    sys.stdout.write("\t".join(_clean(f) for f in fields) + "\n")
    sys.stdout.flush()


async def _run(args: argparse.Namespace) -> list:
    from kosoku import FailureError, run_fuzzingclient

    try:
        return await asyncio.wait_for(
            run_fuzzingclient(
                args.url, args.case or DEFAULT_CASES, args.exclude, concurrency=args.parallelism
            ),
            timeout=args.timeout,
        )
    except FailureError as failure:
        # kosoku raises when any case failed; the exception carries every case's result.
        return list(failure.results)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("url", help="WebSocket URL of the server under test, e.g. ws://127.0.0.1:8080/echo")
    parser.add_argument("--case", action="append", metavar="GLOB", help="case id or glob (repeatable); default: sections 1-10")
    parser.add_argument("--exclude", action="append", metavar="GLOB", help="case id or glob to leave out (repeatable)")
    parser.add_argument("--parallelism", type=int, default=1, help="cases run at once (default 1)")
    parser.add_argument("--timeout", type=float, default=900.0, help="seconds for the whole run (default 900)")
    parser.add_argument("--report-dir", help="write Autobahn's JSON/HTML report here")
    args = parser.parse_args()

    try:
        import kosoku  # noqa: F401
    except ImportError as err:
        _emit("error", f"kosoku is not importable by {sys.executable}: {err}; run scripts/python-deps.sh")
        return 2

    try:
        results = asyncio.run(_run(args))
    except asyncio.TimeoutError:
        _emit("error", f"the run did not finish within {args.timeout:g} s")
        sys.stdout.flush()
        os._exit(2)  # kosoku's worker threads may still hold cases open
    except Exception as err:  # noqa: BLE001 - report any runner failure as a record
        _emit("error", f"kosoku failed: {type(err).__name__}: {err}")
        return 2

    failed = 0
    for r in results:
        behavior, behavior_close = r.behavior.value, r.behavior_close.value
        if behavior not in PASSING or behavior_close not in PASSING:
            failed += 1
        _emit("case", r.case_id, behavior, behavior_close, r.duration, r.description, r.result, r.result_close)
    _emit("summary", len(results), len(results) - failed, failed)

    if args.report_dir:
        try:
            from kosoku._report import write_reports

            # Report files are named after the agent, which is host_port when the server
            # sends no Server header: clear the previous runs' so they don't pile up.
            if os.path.isdir(args.report_dir):
                for name in os.listdir(args.report_dir):
                    if re.fullmatch(r"index\.(json|html)|.+_case_[0-9_]+\.(json|html)", name):
                        os.remove(os.path.join(args.report_dir, name))
            write_reports(results, args.report_dir)
            print(f"autobahn: report written to {args.report_dir}/index.html", file=sys.stderr)
        except Exception as err:  # noqa: BLE001 - the report is a convenience, not the verdict
            print(f"autobahn: could not write the report: {err}", file=sys.stderr)

    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
