"""metrics.jsonl: one JSON object per logged step (auditor.runtime, the HF `on_log` shape, or the team format with a
nested `metrics` mapping), streamed by the one metrics reader."""

from __future__ import annotations

from auditor.evidence.metrics import MetricsSeries, read_jsonl
from auditor.evidence.opener import Folder
from auditor.evidence.sources.interface import FormatInfo, MetricsSource
from auditor.evidence.sources.registry import register


@register
class MetricsJsonl(MetricsSource):
    """training_output/metrics.jsonl (or metrics.jsonl anywhere in the folder)."""

    info = FormatInfo(
        id="metrics_jsonl", kind="metrics", title="metrics.jsonl (auditor, HF on_log records)",
        looks_for=("metrics.jsonl",),
        reads="every line as a JSON object: step (or global_step), loss, epoch, grad_norm, learning rate, eval_* "
              "figures and the trainer's final record (train_runtime, samples/s, train_loss, total_flos)",
        proves="the logged loss curve line by line; NaN/Infinity literals and non-finite grad_norm are found; "
               "a line that does not parse is named by its number",
    )

    def read(self, folder: Folder, rel: str) -> list[MetricsSeries]:
        problem = folder.unreadable(rel)  # a regular file inside the folder, or nothing is read
        if problem:
            series = MetricsSeries(path=rel, kind="metrics.jsonl")
            series._bad(1, problem)
            return [series]
        return [read_jsonl(folder.root / rel, rel)]
