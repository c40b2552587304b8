"""Each printed-progress shape is a named rule, read from a real log of that shape; the series names its rule."""

from __future__ import annotations

import pytest

from auditor.evidence.sources.printed import RULES, read_printed


@pytest.mark.parametrize("rule", RULES, ids=[r.name for r in RULES])
def test_every_rule_reads_its_own_example(rule) -> None:  # type: ignore[no-untyped-def]
    found = read_printed((rule.example,), "train.log")
    assert [s.rule for s in found] == [rule.name]
    assert list(found[0].losses) == [2.3 if "2.3" in rule.example else 0.0062]


LOGS = {
    "step_of_total": [f"Step {s}/50 | loss: {3 - s / 25:.3f} | lr 1e-3" for s in range(5, 55, 5)],
    "bracket_of_total": [f"[{s}/50] loss={3 - s / 25:.3f} acc=0.5" for s in range(5, 55, 5)],
    "tqdm_postfix": [" ".join(f"\r{s * 2}%|##| {s}/50 [00:0{s // 10}<00:01, 9.1it/s, loss={3 - s / 25:.3f}]"
                              for s in range(5, 55, 5))],
    "step_loss": [f"epoch {s // 25} step {s} loss {3 - s / 25:.4f}" for s in range(5, 55, 5)],
    "iteration_loss": [f"it {s}: loss {3 - s / 25:.3f}" for s in range(5, 55, 5)],
}


@pytest.mark.parametrize("name", sorted(LOGS))
def test_a_log_is_read_by_the_rule_of_its_shape(name: str) -> None:
    series = read_printed(tuple(LOGS[name]), "train.log")[0]
    assert series.rule == name
    assert list(series.steps) == list(range(5, 55, 5))
    assert list(series.losses) == [round(3 - s / 25, 4) for s in range(5, 55, 5)]
    assert series.plan == ({"max_steps": 50} if name == "step_of_total" else {})  # only "Step n/N" states a total


def test_eval_losses_and_other_numbers_are_not_training_loss() -> None:
    lines = ("step 10 val_loss 3.0", "step 10 eval loss: 2.0", "Step 3/9 | accuracy: 0.5", "it 4: lossless 1.0")
    assert read_printed(lines, "train.log") == []


def test_non_finite_printed_loss_is_kept_as_non_finite() -> None:
    series = read_printed(("step 1 loss 2.0", "step 2 loss nan", "step 3 loss inf"), "train.log")[0]
    assert series.count == 3 and series.nonfinite_count == 2 and series.nonfinite[0][0] == 2


def test_lightning_stop_line_states_the_plan() -> None:
    found = read_printed(("`Trainer.fit` stopped: `max_steps=120` reached.",), "training_log.txt")
    assert [(s.rule, s.plan) for s in found] == [("lightning_stop", {"max_steps": 120})]
