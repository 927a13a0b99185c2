"""`civicbot nlu eval`'s arithmetic: the out_of_scope decision's precision and recall."""

from __future__ import annotations

from pathlib import Path

from bot.nlu.evaluate import Outcome, Report, markdown, read_examples


def report_of(tmp_path: Path, rows: list[tuple[str, str, str]]) -> Report:
    """A report over (text, gold intent, predicted intent) rows, nothing seen in training."""
    csv = tmp_path / "dev.csv"
    csv.write_text(
        "text,intent,category,procedure\n" + "".join(f"{t},{g},,\n" for t, g, _ in rows),
        encoding="utf-8",
    )
    examples = read_examples(csv, trained=["không liên quan"])
    report = Report()
    for example, (_, _, predicted) in zip(examples, rows, strict=True):
        guess = {"intent": predicted, "category": "∅", "procedure": "∅", "source": "rasa"}
        report.outcomes.append(Outcome(example, guess, 0.01))
    return report


def test_out_of_scope_precision_and_recall(tmp_path: Path) -> None:
    report = report_of(
        tmp_path,
        [
            ("giá vàng hôm nay", "out_of_scope", "out_of_scope"),
            ("what time is it", "out_of_scope", "out_of_scope"),
            ("xe buýt mấy giờ", "out_of_scope", "report_problem"),
            ("rác đầu ngõ", "report_problem", "out_of_scope"),
            ("khai sinh cần gì", "ask_procedure", "ask_procedure"),
            ("either is right", "out_of_scope|help", "help"),
        ],
    )
    precision, recall = report.precision_recall("out_of_scope")
    assert precision == 2 / 3  # three said out_of_scope, two meant it
    assert recall == 2 / 3  # three meant only it: "help" was right for the either-or one
    text = markdown(report, source="dev.csv", command="civicbot nlu eval dev.csv")
    assert "precision 66.7%, recall 66.7%" in text


def test_no_out_of_scope_at_all_is_not_a_division_by_zero(tmp_path: Path) -> None:
    report = report_of(tmp_path, [("rác đầu ngõ", "report_problem", "report_problem")])
    precision, recall = report.precision_recall("out_of_scope")
    assert precision != precision and recall != recall  # NaN: nothing to measure
