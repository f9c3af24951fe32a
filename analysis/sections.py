"""The sections of a report's summary.md: one suite's tables and figures (with its verdicts,
protocol and selection gap), the long-horizon tables, and the few-shot episodes. Each writes its
files into the report folder and returns its Markdown lines."""
from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pandas as pd

from analysis import horizon, horizon_plots, plots, protocol, tables, verdicts
from analysis.collect import row_labels


def of_suite(frames: dict[str, pd.DataFrame], name: str, suite: str) -> pd.DataFrame:
    df = frames.get(name)
    return pd.DataFrame() if df is None else df[df["suite"] == suite]


def suite_section(suite: str, frames: dict[str, pd.DataFrame], swept: list[str], style: dict, out: Path,
                  suffix: str) -> list[str]:
    """One suite's tables and figures; returns its Markdown lines."""
    runs, curves, training = (of_suite(frames, name, suite) for name in ("runs", "curves", "training"))
    targets = tables.targets_of(runs)

    accuracy = tables.accuracy_table(runs, suite)
    steps = tables.steps_to_95(runs, curves, suite)
    agg, imp = tables.aggregates(runs)
    agg.to_csv(out / f"aggregate{suffix}.csv", index=False)
    imp.to_csv(out / f"improvement{suffix}.csv", index=False)
    aggregate, improvement = tables.aggregate_table(agg, suite), tables.improvement_table(imp, suite)
    for name, table in (("accuracy", accuracy), ("steps_to_95", steps), ("aggregate", aggregate),
                        ("improvement", tables.improvement_table(imp, suite, intervals=False))):
        (out / f"{name}{suffix}.tex").write_text(tables.to_latex(table))
    tuned = protocol.read(out)
    head: list[str] = []
    if tuned and suite in tuned[0]:
        gap = protocol.selection_gap(tuned[1], suite)
        (out / f"selection_gap{suffix}.tex").write_text(tables.to_latex(gap))
        head = [*protocol.paragraph(tuned[0], suite, sorted(int(s) for s in pd.unique(runs["seed"]))),
                "### Selection gap", "", gap.caption, "", tables.to_markdown(gap), ""]

    # With a tune, the loss and convergence figures draw each method at its selection (one
    # solid line each); the rows of methods also run at other configurations (a K study) get a figure of
    # their own, so that neither figure needs a dozen lines.
    chosen = (horizon.selected_rows(runs, {m: v.get("overrides", []) for m, v in tuned[0][suite].items()})
              if head else set(row_labels(runs)))
    study = protocol.k_study(tuned[0], suite) if tuned else {}  # method -> K -> overrides tuned with K held
    found = verdicts.verdicts(runs, imp, verdicts.pairs(runs, chosen, study))
    # With few target images, the same pairs at each size (the K study's pairs excepted).
    few = verdicts.limited_verdicts(of_suite(frames, "limited", suite),
                                    verdicts.pairs(runs, chosen, k_pairs=False))
    pd.concat([found, few], ignore_index=True).to_csv(out / f"verdicts{suffix}.csv", index=False)
    verdict = verdicts.table(found, suite)
    (out / f"verdicts{suffix}.tex").write_text(tables.to_latex(verdict))
    verdict_lines = [verdict.caption, "", tables.to_markdown(verdict, corner="X vs Y"), ""]
    if not few.empty:
        few_table = verdicts.table(few, suite, limited=True)
        (out / f"verdicts_limited{suffix}.tex").write_text(tables.to_latex(few_table))
        verdict_lines += [few_table.caption, "", tables.to_markdown(few_table, corner="X vs Y"), ""]
    verdict_lines += [f"Data: [verdicts{suffix}.csv](verdicts{suffix}.csv).", ""]
    (out / f"verdicts{suffix}.md").write_text("\n".join([f"# Verdicts on `{suite}`", "", *verdict_lines]))
    selected_style = {r: replace(s, linestyle="-", variant="") if head else s
                      for r, s in style.items() if r in chosen}
    varied = set(runs.loc[~row_labels(runs).isin(chosen), "method"])
    variant_style = {r: s for r, s in style.items()
                     if r in set(row_labels(runs[runs["method"].isin(varied)]))}
    no_curves = "no method meta-tested at two or more phi steps (metatest.at_steps)"
    lead, ref = (next((r for r in pd.unique(row_labels(runs[runs["method"] == m])) if r in chosen), None)
                 for m in ("ours", "reptile"))
    others = [r for r in pd.unique(row_labels(runs)) if r in chosen and r != lead]
    # (title, files or None, why a figure may be missing)
    figures = [
        ("Meta-training loss" + (", each method at its selection" if head else ""),
         plots.training_loss(training, selected_style, out, f"training_loss{suffix}"),
         "no metrics.jsonl rows with a loss"),
        ("Meta-convergence, mean over targets" + (", each method at its selection" if head else ""),
         plots.metaconvergence(curves, targets, selected_style, out, f"metaconvergence{suffix}"), no_curves),
        *[(f"Meta-convergence on {t}",
           plots.metaconvergence(curves, targets, selected_style, out, f"metaconvergence{suffix}_{t}", target=t),
           no_curves) for t in targets],
        *([("Meta-convergence, every configuration of the methods run at more than one",
            plots.metaconvergence(curves, targets, variant_style, out, f"metaconvergence_variants{suffix}"),
            no_curves)] if varied else []),
        ("Speed-up against threshold, CTS and Reptile at their selections",
         horizon_plots.speedup_vs_threshold(curves, targets, lead, ref, style, out, f"speedup_vs_threshold{suffix}")
         if lead and ref else None, "no CTS and Reptile runs"),
        ("Limited data: accuracy against training images per target class, each method at its selection",
         horizon_plots.limited_data(of_suite(frames, "limited", suite), runs, selected_style, out,
                                    f"limited_data{suffix}"), "no run set metatest.train_sizes"),
        ("Per-seed paired differences, CTS minus each method, final phi",
         horizon_plots.paired_differences(runs, lead, others, style, out, f"paired_differences{suffix}")
         if lead else None, "no CTS run"),
        ("Accuracy vs K", plots.accuracy_vs_k(runs, swept, style, out, f"accuracy_vs_K{suffix}",
                                              study),
         "no method was run at two or more values of method.reset_every"),
        ("Sensitivity: validation accuracy of every tuning trial vs each tuned key"
         + (" (the main tune's; the K study's are in trials.csv)" if study else ""),
         plots.sensitivity(protocol.main_tune(tuned[1][tuned[1]["suite"] == suite]), style, out, f"sensitivity{suffix}",
                           protocol.choice_keys(tuned[0], suite)) if head else None,
         "no tune given (--tune)"),
    ]
    lines = [f"## Suite `{suite}`", "", *head, "### Final meta-test accuracy", "", accuracy.caption, "",
             tables.to_markdown(accuracy), "", "### Aggregates over seeds and targets", "", aggregate.caption, "",
             tables.to_markdown(aggregate), "", f"Data: [aggregate{suffix}.csv](aggregate{suffix}.csv).", "",
             improvement.caption, "", tables.to_markdown(improvement, corner="P(row > column)"), "",
             f"Data: [improvement{suffix}.csv](improvement{suffix}.csv).", "",
             "### Verdicts", "", *verdict_lines,
             "### Inner steps to 95% of the best", "", steps.caption, "",
             tables.to_markdown(steps), "",
             *horizon_section(suite, runs, curves, of_suite(frames, "limited", suite), tuned, out, suffix),
             *episodes_section(suite, of_suite(frames, "episodes", suite), out, suffix),
             "### Figures", ""]
    for title, paths, why_not in figures:
        if paths:
            # The PDF lies beside the PNG in every report this writes, but git keeps the committed
            # references' PDFs out (.gitignore): named, not linked, so no link there is dead.
            lines += [f"- [{title}]({paths[0].name}) (also `{paths[1].name}`)  ", f"  ![{title}]({paths[0].name})"]
        else:
            lines.append(f"- {title}: not drawn ({why_not})")
    return [*lines, ""]


def horizon_section(suite: str, runs: pd.DataFrame, curves: pd.DataFrame, limited: pd.DataFrame,
                    tuned: tuple[dict, pd.DataFrame] | None, out: Path, suffix: str) -> list[str]:
    """Steps to reach Reptile's final accuracy, accuracy along the horizon, against K, and with
    few target images (see ``analysis.horizon``); each table that the runs allow."""
    targets = tables.targets_of(runs)
    by_row = horizon.seed_curves(curves, targets) if not curves.empty else {}
    overrides = (tuned[0].get(suite, {}).get(horizon.REFERENCE, {}).get("overrides", []) if tuned else [])
    reference = horizon.reference_row(by_row, runs, dict(o.split("=", 1) for o in overrides))
    found: list[tuple[str, str, tables.Table | None, str]] = []  # (title, file stem, table, why not)
    if reference:
        frame, threshold = horizon.steps_to_reach(curves, targets, reference)
        frame.to_csv(out / f"steps_to_reach{suffix}.csv", index=False)
        found.append(("Steps to reach Reptile's final accuracy", "steps_to_reach",
                      horizon.steps_to_reach_table(frame, threshold, reference, suite), ""))
    else:
        found.append(("Steps to reach Reptile's final accuracy", "steps_to_reach", None,
                      "no Reptile run with meta-tested checkpoints"))
    found += [
        ("Accuracy along the horizon", "horizon",
         horizon.horizon_table(curves, targets, suite) if by_row else None, "no meta-tested checkpoints"),
        ("Accuracy against K", "accuracy_vs_K",
         horizon.k_table(runs, suite, protocol.k_study(tuned[0], suite) if tuned else None),
         "no method was run at two or more values of method.reset_every"),
        ("Limited target data", "limited", horizon.limited_table(limited, runs, suite),
         "no run set metatest.train_sizes"),
    ]
    lines = ["### Long horizon", ""]
    for title, stem, table, why_not in found:
        if table is None:
            lines += [f"- {title}: not computed ({why_not}).", ""]
            continue
        (out / f"{stem}{suffix}.tex").write_text(tables.to_latex(table))
        data = f" Data: [{stem}{suffix}.csv]({stem}{suffix}.csv)." if stem == "steps_to_reach" else ""
        lines += [f"#### {title}", "", table.caption + data, "", tables.to_markdown(table), ""]
    return lines


def episodes_section(suite: str, episodes: pd.DataFrame, out: Path, suffix: str) -> list[str]:
    """The few-shot episodes' tables (``metatest.episodes`` or ``benchmark.episodes``), if any run has them."""
    if episodes.empty:
        return ["### Few-shot episodes", "", "- Not computed (no run has metatest.episodes rows).", ""]
    lines = ["### Few-shot episodes", ""]
    for k, table in enumerate(tables.episodes_tables(episodes, suite)):
        stem = f"episodes{suffix}" + (f"_{k}" if k else "")
        (out / f"{stem}.tex").write_text(tables.to_latex(table))
        lines += [table.caption + " Data: [episodes.csv](episodes.csv).", "",
                  tables.to_markdown(table), ""]
    return lines
