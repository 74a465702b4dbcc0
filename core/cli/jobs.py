"""``alignscope jobs list|show|cancel|logs``: the job store from the command line."""
from __future__ import annotations

import argparse
import json
import time
from typing import Any

from alignscope.cli.common import EXIT_OK, Parser
from alignscope.jobs.store import JobStore, format_job_details, format_job_table

__all__ = ["add_jobs_commands"]


def add_jobs_commands(commands: Any) -> None:
    jobs = commands.add_parser("jobs", help="list, inspect, cancel and read the logs of jobs")
    jobs_commands = jobs.add_subparsers(dest="jobs_command", required=True, parser_class=Parser)
    jobs_list = jobs_commands.add_parser("list", help="jobs, newest first")
    jobs_list.add_argument("--status", choices=["queued", "running", "succeeded", "failed", "cancelled"])
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
