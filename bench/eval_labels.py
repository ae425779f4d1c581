"""Agreement of the offline judge with human labels on the real labelled sets.

For each criterion of `../shared/eval/` it scores every item three ways and writes each
way's predictions as JSONL, then has the sets' own scorer (`eval_agreement.py`) check them:

- the rubric's check rule alone (zero-shot, nothing learnt);
- levels learnt by K-fold cross-validation inside the set (`coachloop eval --folds K`): each
  fold is scored by a model learnt on the other folds only, items that share a conversation
  kept in one fold;
- the plain baseline the set's README describes, on the same folds: the judged turn's
  MiniLM embedding into a logistic regression.

The split is repeated with several seeds; the tables give the figures of each seed and
their median.

    uv run python bench/eval_labels.py --folds 5 --seeds 0 1 2
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from config.rubric import Rubric  # noqa: E402
from evaluators.agreement import BootstrapOptions, pair_agreement  # noqa: E402
from evaluators.embeddings import SentenceEncoder  # noqa: E402
from evaluators.evaluation import (  # noqa: E402
    EvaluationPlan,
    LabelledItem,
    _fold_index,
    evaluate_labels,
    find_rubrics,
    load_labels,
    published_figures,
    write_predictions,
)
from evaluators.offline import OfflineJudge  # noqa: E402

EVAL_DIR = Path(__file__).resolve().parents[2] / "shared" / "eval"
SETS = {
    "emotional_reactions": "epitome_empathy.dev.jsonl",
    "interpretations": "epitome_empathy.dev.jsonl",
    "explorations": "epitome_empathy.dev.jsonl",
    "reflection": "annomi_reflection.dev.jsonl",
}
RESULTS = Path(__file__).parent / "results" / "eval"
NO_BOOTSTRAP = BootstrapOptions(resamples=0)


def checked(gold: Path, predictions: Path, criterion: str) -> dict[str, float]:
    """Exact agreement and QWK as `eval_agreement.py` computes them from the file."""
    out = predictions.with_suffix(".scores.json")
    subprocess.run(
        [
            sys.executable,
            str(EVAL_DIR / "eval_agreement.py"),
            "--gold",
            str(gold),
            "--pred",
            str(predictions),
            "--criterion",
            criterion,
            "--json",
            str(out),
        ],
        check=True,
        capture_output=True,
        text=True,
    )
    scores = json.loads(out.read_text(encoding="utf-8"))["scores"][criterion]
    return {"n": scores["n"], "exact": scores["exact"], "qwk": scores["qwk"]}


def plain_baseline(
    encoder: SentenceEncoder,
    items: Sequence[LabelledItem],
    gold: Sequence[int],
    folds: int,
    seed: int,
) -> list[int]:
    """The README's baseline on the judge's folds: the judged turn's embedding into a
    logistic regression (classes weighted by their frequency, as the judge's own model is)."""
    from sklearn.linear_model import LogisticRegression

    texts = [i.transcript.turns[i.transcript.target_turn or -1].text for i in items]
    x = encoder.encode(texts, cache=True).astype(np.float64)
    y = np.asarray(gold)
    fold = np.asarray(_fold_index(items, gold, folds, seed))
    predicted = np.zeros(len(items), dtype=int)
    for k in range(folds):
        train, test = fold != k, fold == k
        model = LogisticRegression(max_iter=2000, class_weight="balanced").fit(x[train], y[train])
        predicted[test] = model.predict(x[test])
    return [int(v) for v in predicted]


async def run_criterion(
    judge: OfflineJudge,
    encoder: SentenceEncoder,
    criterion: str,
    rubric: Rubric,
    folds: int,
    seeds: Sequence[int],
) -> dict[str, Any]:
    gold_path = EVAL_DIR / SETS[criterion]
    labels = load_labels(gold_path)
    items = [i for i in labels.items if i.labels.get(criterion) is not None]
    gold = [int(i.labels[criterion] or 0) for i in items]
    RESULTS.mkdir(parents=True, exist_ok=True)
    out: dict[str, Any] = {"criterion": criterion, "n": len(items), "runs": []}

    started = time.perf_counter()
    zero = await evaluate_labels(
        judge, labels, {criterion: rubric}, plan=EvaluationPlan(bootstrap=NO_BOOTSTRAP)
    )
    rule_file = RESULTS / f"{criterion}.rule.jsonl"
    write_predictions(rule_file, zero.predictions)
    report = zero.reports[0]
    out["rule"] = checked(gold_path, rule_file, criterion)
    out["majority"] = {
        "level": report.majority_level,
        "exact": report.majority.exact.value,
        "qwk": 0.0,
    }
    out["label_counts"] = report.label_counts
    out["rule_s"] = time.perf_counter() - started

    for seed in seeds:
        started = time.perf_counter()
        plan = EvaluationPlan(folds=folds, seed=seed, save_models=False, bootstrap=NO_BOOTSTRAP)
        result = await evaluate_labels(judge, labels, {criterion: rubric}, plan=plan)
        learnt_file = RESULTS / f"{criterion}.cv{folds}.seed{seed}.jsonl"
        write_predictions(learnt_file, result.predictions)
        learnt_row = result.reports[0].rows[-1]
        baseline = plain_baseline(encoder, items, gold, folds, seed)
        base_file = RESULTS / f"{criterion}.plain.cv{folds}.seed{seed}.jsonl"
        write_predictions(
            base_file,
            [
                {"id": i.id, "criterion": criterion, "level": v}
                for i, v in zip(items, baseline, strict=True)
            ],
        )
        base = pair_agreement(gold, list(baseline), bootstrap=BootstrapOptions(resamples=0))
        out["runs"].append(
            {
                "seed": seed,
                "learnt": checked(gold_path, learnt_file, criterion),
                "learnt_in_process_qwk": learnt_row.agreement.kappa.value,
                "labels_learnt_per_fold": learnt_row.labels_learnt,
                "plain": checked(gold_path, base_file, criterion),
                "plain_in_process_qwk": base.kappa.value,
                "seconds": time.perf_counter() - started,
            }
        )
        run = out["runs"][-1]
        print(
            f"  {criterion} seed {seed}: learnt exact {run['learnt']['exact']:.3f} "
            f"QWK {run['learnt']['qwk']:.3f}; plain exact {run['plain']['exact']:.3f} "
            f"QWK {run['plain']['qwk']:.3f} ({run['seconds']:.0f} s)",
            flush=True,
        )
    for way in ("learnt", "plain"):
        out[f"{way}_median"] = {
            m: statistics.median(r[way][m] for r in out["runs"]) for m in ("exact", "qwk")
        }
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--criteria", nargs="+", default=list(SETS))
    args = parser.parse_args()
    logging.disable(logging.WARNING)
    if not EVAL_DIR.is_dir():
        raise SystemExit(f"{EVAL_DIR} is absent: the labelled sets are needed for this benchmark")
    unknown = sorted(set(args.criteria) - set(SETS))
    if unknown:
        raise SystemExit(f"unknown criteria {unknown}; choose from {sorted(SETS)}")

    encoder = SentenceEncoder(cache_size=500_000)
    judge = OfflineJudge(encoder, models_dir=None, cache_turns=True)
    rubrics = find_rubrics(args.criteria, rubric=None)
    human = published_figures(EVAL_DIR)
    load = os.getloadavg()
    results = []
    for criterion in args.criteria:
        results.append(
            asyncio.run(
                run_criterion(judge, encoder, criterion, rubrics[criterion], args.folds, args.seeds)
            )
        )

    seeds = ", ".join(map(str, args.seeds))
    print(f"\n{args.folds}-fold CV, seeds {seeds}; exact / QWK (median over seeds)")
    print(
        f"{'criterion':<20} {'n':>4} {'majority':>12} {'check rule':>12} {'learnt (CV)':>12} "
        f"{'plain (CV)':>12} {'README plain':>12} {'people':>7}"
    )
    for r in results:
        c = r["criterion"]
        print(
            f"{c:<20} {r['n']:>4} {r['majority']['exact']:>6.2f} / 0.00 "
            f"{r['rule']['exact']:>5.2f} / {r['rule']['qwk']:.2f} "
            f"{r['learnt_median']['exact']:>5.2f} / {r['learnt_median']['qwk']:.2f} "
            f"{r['plain_median']['exact']:>5.2f} / {r['plain_median']['qwk']:.2f} "
            f"{human.baseline.get(c, float('nan')):>12.2f} {human.human.get(c, float('nan')):>7.2f}"
        )
        each = "; ".join(
            f"seed {run['seed']}: {run['learnt']['qwk']:.3f} vs plain {run['plain']['qwk']:.3f}"
            for run in r["runs"]
        )
        print(f"{'':<20} QWK by seed, learnt vs plain: {each}")
    print(f"load average {load[0]:.1f} -> {os.getloadavg()[0]:.1f}")
    summary = RESULTS / f"summary.cv{args.folds}.json"
    summary.write_text(json.dumps(results, indent=2), encoding="utf-8")
    print(f"predictions and figures in {RESULTS}")


if __name__ == "__main__":
    main()
