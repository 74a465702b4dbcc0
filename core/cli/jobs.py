"""``alignscope jobs list|show|cancel|logs``: the job store from the command line."""
from __future__ import annotations

import argparse
import json
import time
from typing import Any, Iterable

from alignscope.cli.common import EXIT_OK, Parser
from alignscope.jobs import FAILED, STATUSES, Job, JobStore, format_duration, format_time
from alignscope.jobs.model import one_line

__all__ = ["add_jobs_commands", "format_job_details", "format_job_table"]


def add_jobs_commands(commands: Any) -> None:
    jobs = commands.add_parser("jobs", help="list, inspect, cancel and read the logs of jobs")
    jobs_commands = jobs.add_subparsers(dest="jobs_command", required=True, parser_class=Parser)
    jobs_list = jobs_commands.add_parser("list", help="jobs, newest first")
    jobs_list.add_argument("--status", choices=STATUSES)
    jobs_list.add_argument("--kind")
    jobs_list.add_argument("--limit", type=int, default=50)
    jobs_list.add_argument("--json", action="store_true")
    jobs_list.set_defaults(func=cmd_jobs_list)
    jobs_show = jobs_commands.add_parser("show", help="every field of one job")
    jobs_show.add_argument("job_id")
    jobs_show.add_argument("--json", action="store_true")
    jobs_show.set_defaults(func=cmd_jobs_show)
    jobs_cancel = jobs_commands.add_parser("cancel", help="cancel a job (kills its whole process group)")
    jobs_cancel.add_argument("job_id")
    jobs_cancel.set_defaults(func=cmd_jobs_cancel)
    jobs_logs = jobs_commands.add_parser("logs", help="the job's log.txt")
    jobs_logs.add_argument("job_id")
    jobs_logs.add_argument("--tail", type=int, default=200, help="last N lines (default 200)")
    jobs_logs.add_argument("--follow", "-f", action="store_true", help="keep printing until the job ends")
    jobs_logs.set_defaults(func=cmd_jobs_logs)


def format_job_table(jobs: Iterable[Job]) -> str:
    """``alignscope jobs list``: a header and one line per job (no trailing newline; print it)."""
    jobs = list(jobs)
    if not jobs:
        return "no jobs"
    header = ("ID", "KIND", "STATUS", "PROGRESS", "CREATED", "DURATION", "MESSAGE")
    rows = [header] + [
        (job.id, job.kind, job.status, f"{job.progress:.0%}", format_time(job.created_at),
         format_duration(job.duration), one_line(job.error if job.status == FAILED else (job.message or ""), 60))
        for job in jobs]
    widths = [max(len(row[i]) for row in rows) for i in range(len(header) - 1)]
    return "\n".join("  ".join(cell.ljust(width) for cell, width in zip(row, widths)) + "  " + row[-1]
                     for row in rows).rstrip()


def format_job_details(job: Job) -> str:
    """``alignscope jobs show``: every field, one per line, then the config."""
    lines = [
        ("id", job.id), ("kind", f"{job.kind} ({job.target})"), ("status", job.status),
        ("progress", f"{job.progress:.0%}" + (f"  {job.message}" if job.message else "")),
        ("error", job.error or "-"), ("run dir", str(job.run_dir)), ("executor", job.executor),
        ("created", format_time(job.created_at)), ("started", format_time(job.started_at)),
        ("finished", format_time(job.finished_at)), ("duration", format_duration(job.duration)),
        ("worker", f"pid {job.pid} on {job.host}" if job.pid else "-"),
        ("exit code", "-" if job.exit_code is None else str(job.exit_code)),
    ]
    text = "\n".join(f"{key:<10} {value}" for key, value in lines)
    return text + "\nconfig\n" + json.dumps(job.config, indent=2, ensure_ascii=False)


def cmd_jobs_list(args: argparse.Namespace) -> int:
    jobs = JobStore().list_jobs(status=args.status, kind=args.kind, limit=args.limit)
    if args.json:
        print(json.dumps([job.to_dict() for job in jobs], default=str))
    else:
        print(format_job_table(jobs))
    return EXIT_OK


def cmd_jobs_show(args: argparse.Namespace) -> int:
    job = JobStore().get(args.job_id)
    print(json.dumps(job.to_dict(), default=str) if args.json else format_job_details(job))
    return EXIT_OK


def cmd_jobs_cancel(args: argparse.Namespace) -> int:
    job = JobStore().cancel(args.job_id)
    print(f"{job.id}: {job.status}")
    return EXIT_OK


def cmd_jobs_logs(args: argparse.Namespace) -> int:
    store = JobStore()
    text = store.logs(args.job_id, tail=args.tail)
    print(text, end="" if text.endswith("\n") or not text else "\n")
    if args.follow:
        job = store.get(args.job_id)
        seen = len(store.logs(args.job_id, tail=None))
        while job.is_active:
            time.sleep(1)
            full = store.logs(args.job_id, tail=None)
            print(full[seen:], end="", flush=True)
            seen = len(full)
            job = store.get(args.job_id)
        print(f"[{job.id} {job.status}{': ' + job.error if job.error else ''}]")
    return EXIT_OK
