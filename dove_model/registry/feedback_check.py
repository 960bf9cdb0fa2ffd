"""The feedback gate as part of the register stage's decision.

The register stage promotes a challenger as soon as its gates pass, so the users' pairs must
be one of those gates: checked after promotion (the retraining DAG's promote task) the
challenger is already champion and there is nothing left to refuse. A refusal is recorded
as every gate failure is: tag ``gate=failed`` and the reason in ``gate_summary``.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

from dove_model.config import Params
from dove_model.data.feedback_rows import PAIRS_FILE
from dove_model.feedback.gate import FeedbackGate
from dove_model.registry.gates import GateDecision

FEEDBACK_LINE = "feedback "  # the summary's prefix for this gate's line


@dataclass(frozen=True)
class FeedbackCheck:
    """What the feedback gate compares: the challenger (a local model directory) and the
    champion on the export's ``eval`` pairs, over ``dataset_dir``'s evaluation images."""

    model_dir: Path
    dataset_dir: Path | None
    pairs_file: Path
    max_regression: float

    @classmethod
    def of(
        cls, params: Params, model_dir: Path, dataset_dir: Path | None, root: Path | None
    ) -> FeedbackCheck:
        pairs_file = (root or Path(".")) / params.feedback.export.dir / PAIRS_FILE
        return cls(model_dir, dataset_dir, pairs_file, params.register_.gates.max_regression)

    def verdict(self, fetch_champion: Callable[[Path], Path]) -> FeedbackGate | None:
        """None when there is nothing to compare (no export, no held-out relevant pair, no
        dataset); ``fetch_champion(dst)`` downloads the champion's model directory."""
        import pandas as pd

        from dove_model.families.dispatch import load_encoder
        from dove_model.feedback.gate import check_feedback_gate, eval_pairs, feedback_recall

        if self.dataset_dir is None or not self.pairs_file.is_file():
            return None
        pairs = pd.read_parquet(self.pairs_file)
        if eval_pairs(pairs).empty:
            return None
        with tempfile.TemporaryDirectory(prefix="dove-feedback-gate-") as tmp:
            champion = load_encoder(fetch_champion(Path(tmp) / "champion"))
            theirs = feedback_recall(champion, self.dataset_dir, pairs)
        ours = feedback_recall(load_encoder(self.model_dir), self.dataset_dir, pairs)
        return check_feedback_gate(ours, theirs, self.max_regression)


def with_feedback(decision: GateDecision, verdict: FeedbackGate | None) -> GateDecision:
    """``decision`` with the feedback gate's line added: a failure when it refused."""
    if verdict is None:
        return decision
    line = FEEDBACK_LINE + verdict.reason
    if verdict.passed:
        return replace(decision, checked=(*decision.checked, line))
    return replace(decision, passed=False, failures=(*decision.failures, line))
