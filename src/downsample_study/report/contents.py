"""What a report holds: the sweep's jobs, its variants and their comparisons."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from downsample_study.report.comparisons import Comparison
from downsample_study.report.variants import Variant
from downsample_study.sweeps.folder import JobFolder


@dataclass
class Report:
    sweep: Path
    jobs: list[JobFolder]
    variants: list[Variant]
    keys: list[str]  # the config keys the tables show
    baselines: list[dict[str, str]]
    comparisons: list[Comparison]
    no_seed_completed: list[Variant] = field(default_factory=list)  # every seed failed
    # each evaluation's headline number against the baselines: {(evaluation, summary key):
    # its comparisons}, each a family of its own (``evaluation_sections.py``)
    headlines: dict[tuple[str, str], list[Comparison]] = field(default_factory=dict)

    @property
    def first_baselines(self) -> set[int]:
        """The variants (ids) that the first kind of baseline compares others with: the ones
        the tables and plots mark."""
        return {id(c.baseline) for c in self.comparisons
                if self.baselines and c.spec == self.baselines[0]}

    @property
    def unfinished(self) -> list[JobFolder]:
        return [job for job in self.jobs if job.status != "completed"]
