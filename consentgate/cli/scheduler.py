"""``consentgate scheduler``: the job runner process."""

from __future__ import annotations

import logging

import click

from consentgate import jobs


def register(cli: click.Group) -> None:
    cli.add_command(scheduler)


@click.command()
@click.option("--once", "once", multiple=True, metavar="JOB",
              help="run these jobs once (if their lease is free) and exit; 'all' for every job")
@click.option("--list", "list_jobs", is_flag=True, help="list the jobs and their intervals")
def scheduler(once: tuple[str, ...], list_jobs: bool) -> None:
    """Run the scheduled jobs (outbox delivery, SLA escalation, expiries) until stopped."""
    from consentgate.cli.base import open_runtime

    registered = jobs.registered()
    if list_jobs:
        for name, spec in registered.items():
            click.echo(f"{name}\tevery {spec.every}")
        return
    rt = open_runtime()
    logging.basicConfig(level=rt.settings.log_level,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if once:
        names = list(registered) if "all" in once else list(once)
        unknown = [n for n in names if n not in registered]
        if unknown:
            raise click.BadParameter(f"unknown job(s): {', '.join(unknown)}", param_hint="--once")
        for name in names:
            ran = jobs.run_once(rt, name)
            outcome = "ran" if ran else "failed (see the log)" if ran is None else "skipped (running elsewhere)"
            click.echo(f"{name}: {outcome}")
        return
    jobs.serve_forever(rt)
