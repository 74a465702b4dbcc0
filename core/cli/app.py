"""``alignscope app``: start the Streamlit app (loopback unless ``--host`` says otherwise)."""
from __future__ import annotations

import argparse
import ipaddress
import os
import sys
from pathlib import Path
from typing import Any, Sequence

from alignscope.cli.common import EXIT_BAD_INPUT, EXIT_OK, Parser, UsageError

__all__ = ["add_app_command", "app_command", "cmd_app", "main"]

HELP = "start the web app (Streamlit)"


def add_app_command(commands: Any) -> None:
    _add_arguments(commands.add_parser("app", help=HELP))


def main(argv: Sequence[str]) -> int:
    """``alignscope app ARGS`` without the other command groups: it replaces this process with
    Streamlit, and the app imports the library itself, so nothing else is imported on the way
    (see :func:`alignscope.cli.main`)."""
    parser = Parser(prog="alignscope app", description=HELP)
    _add_arguments(parser)
    try:
        return cmd_app(parser.parse_args(argv))
    except UsageError as err:
        print(f"alignscope: error: {err}", file=sys.stderr)
        return EXIT_BAD_INPUT


def _add_arguments(app: argparse.ArgumentParser) -> None:
    app.add_argument("--host", default="127.0.0.1",
                     help="address to listen on (default 127.0.0.1; 0.0.0.0 exposes the app)")
    app.add_argument("--port", type=int, default=8501)
    app.add_argument("--data-root", default=".", help="the only folder the app opens typed paths in")
    app.add_argument("--data", help="data set to open first (default: the built-in demo)")
    app.add_argument("--home", help="folder for caches, jobs and runs (default ~/.cache/alignscope)")
    app.add_argument("--max-upload-mb", type=int, default=200, help="upload size cap in MB")
    app.set_defaults(func=cmd_app)


def app_command(host: str, port: int, extra: Sequence[str] = ()) -> list[str]:
    """The ``streamlit run`` argument list for the app (no shell: a list, never a string)."""
    main = Path(__file__).resolve().parents[2] / "app" / "main.py"
    if not main.exists():  # installed (non-editable) layout: app/ is the alignscope.app package
        import alignscope.app

        main = Path(alignscope.app.__file__).resolve().parent / "main.py"
    return [sys.executable, "-m", "streamlit", "run", str(main),
            "--server.address", host, "--server.port", str(port), "--server.headless", "true",
            "--browser.gatherUsageStats", "false", "--client.showErrorDetails", "none",
            "--client.toolbarMode", "minimal", "--server.fileWatcherType", "none",
            # Streamlit's default full gc.collect() after every script run cost 0.5-0.8 s per page
            # switch with a 62k-pair data set and its caches in memory (py-spy, benchmarks/bench_pages);
            # Python's own generational collector still runs (server memory: benchmarks/bench_load).
            "--runner.postScriptGC", "false", *extra]


def cmd_app(args: argparse.Namespace) -> int:
    root = Path(args.data_root).expanduser().resolve()
    if not root.is_dir():
        raise UsageError(f"--data-root {args.data_root}: not a folder")
    if not 0 < args.port < 65536:
        raise UsageError("--port must be between 1 and 65535")
    try:
        loopback = ipaddress.ip_address(args.host).is_loopback
    except ValueError:
        loopback = args.host == "localhost"
    if not loopback:
        print(f"alignscope: listening on {args.host}: anyone who can reach this machine can use the app",
              file=sys.stderr)
    env = {**os.environ, "ALIGNSCOPE_DATA_ROOT": str(root), "ALIGNSCOPE_INITIAL_DATA": args.data or "demo"}
    if args.home:
        env["ALIGNSCOPE_HOME"] = str(Path(args.home).expanduser().resolve())
    command = app_command(args.host, args.port,
                          ["--server.maxUploadSize", str(args.max_upload_mb)])
    print(f"alignscope: serving http://{args.host}:{args.port} (data root {root})", file=sys.stderr)
    sys.stdout.flush()
    os.execve(command[0], command, env)  # replaces this process: signals go straight to Streamlit
    return EXIT_OK  # pragma: no cover
