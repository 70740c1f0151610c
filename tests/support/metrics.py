"""Reading one sample out of a node's ``/metrics`` text."""

from __future__ import annotations


def sample(metrics: str, name: str, **labels: str) -> float:
    """The value of ``name{labels}`` (labels in any order), 0 when absent."""
    wanted = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
    for line in metrics.splitlines():
        if line.startswith(f"{name}{{{wanted}}} "):
            return float(line.rsplit(" ", 1)[1])
    return 0.0
