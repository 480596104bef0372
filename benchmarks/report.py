"""The claims report: every claim of :mod:`benchmarks.claims` and study of :mod:`benchmarks.studies`
beside the paper's numbers, with its verdict, provenance and the rules it follows, as Markdown
(``results/REPRODUCTION.md``, written by ``scripts/claims.py``).
"""
from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np

from benchmarks import paper
from benchmarks.claims import (BASELINES, FACTOR_TOLERANCE, MIN_ARCHITECTURES, MUCH_SMALLER, PAPER_DATASETS,
                               Claim, Result, Rows, agcam_claims, architecture_claims, checkpoint_of, compare,
                               factor_rows, family_claims, localization_claims, order_of_magnitude_rows,
                               ordering_claims, pass_rows, pronounced_rows, runtime_claims)
from benchmarks.stats import (ALPHA, CONFIDENCE, FAILS, FAMILIES, HOLDS, LEVEL, LOWER, MARGIN_MISSED, NA, TIE,
                               Stats, cell_stats, family_of, stated_difference, verdict_kind)
from benchmarks.studies import (CONSISTENTLY, MIN_STUDY_IMAGES, d1_results, fig5_claims, fig5_levels, read_groups,
                                table1_results, table3_rows)
from benchmarks.tables import dataset_label, method_label, model_label

VERDICTS = (HOLDS, MARGIN_MISSED, FAILS, TIE, NA)


# -- the report -------------------------------------------------------------------------------------------
def _f(x: float, fmt: str = "{:.2f}") -> str:
    return "–" if x is None or not np.isfinite(x) else fmt.format(x)


def _table(header: Sequence[str], lines: Sequence[Sequence[str]]) -> list[str]:
    return ["| " + " | ".join(header) + " |", "|" + "---|" * len(header),
            *("| " + " | ".join(map(str, line)) + " |" for line in lines), ""]


def _grouped(values: Mapping[str, str]) -> str:
    """"fp32" when every method has it, else "fp32; bf16: ScoreCAM"."""
    by: dict[str, list[str]] = {}
    for meth, v in values.items():
        by.setdefault(v, []).append(method_label(meth))
    if len(by) == 1:
        return next(iter(by))
    main_value = max(by, key=lambda v: len(by[v]))
    return "; ".join([main_value, *(f"{v}: {', '.join(ms)}" for v, ms in by.items() if v != main_value)])


def _weights(cfg: Mapping) -> str:
    checkpoint = checkpoint_of(cfg)
    if checkpoint:
        return f"checkpoint ({checkpoint})"
    return "pretrained" if cfg.get("model.pretrained", True) else "random weights"


def rows_section(data: Rows) -> list[str]:
    """Per (dataset, architecture): common images, cells cut to them, devices, precisions, weights."""
    lines = []
    for (d, m), g in data.rows.groupby(["dataset", "model"], sort=False):
        cfgs = {meth: data.configs.get((d, m, meth), {}) for meth in g["method"].unique()}
        cut: dict[int, list[str]] = {}
        for (dd, mm, meth), (_, total) in data.trimmed.items():
            if (dd, mm) == (d, m):
                cut.setdefault(total, []).append(method_label(meth))
        lines.append([dataset_label(d), model_label(m), FAMILIES.get(data.families[m], data.families[m]),
                      g["id"].nunique(), ", ".join(method_label(x) for x in cfgs),
                      "; ".join(f"{', '.join(ms)} had {n}" for n, ms in cut.items()) or "none",
                      ", ".join(sorted(set(g["device"].astype(str)))),
                      _grouped({k: str(c.get("method.precision", "not recorded")) for k, c in cfgs.items()}),
                      _grouped({k: _weights(c) for k, c in cfgs.items()})])
    return _table(["Dataset", "Architecture", "Family", "Common images", "Methods", "Cells cut to the common set",
                   "Device(s)", "Precision", "Weights"], lines)


def _label(metric: str) -> str:
    return "seconds/image (↓)" if metric == "seconds" else f"{metric.upper()} ({'↓' if metric in LOWER else '↑'})"


def _expected(c: Claim) -> str:
    others = "the best baseline" if c.opponents == BASELINES else " / ".join(method_label(o) for o in c.opponents)
    return f"{method_label(c.subject)} {'ahead of' if c.expect == 'better' else 'behind'} {others}"


def _paper_cell(c: Claim, fmt: str) -> str:
    if c.paper is None:
        return "–"
    opp, ov, sv = c.paper
    if c.factors:
        return f"×{sv:{fmt}} vs {method_label(opp)} ×{ov:{fmt}} (factors vs GradCAM)"
    return f"{sv:{fmt}} vs {method_label(opp)} {ov:{fmt}} (Δ {sv - ov:+{fmt}})"


def _margin_cell(r: Result) -> str:
    c = r.claim
    if c.margin is None:
        return "–"
    stated = f"{stated_difference(c.margin, c.metric, c.expect):+.2f} vs {method_label(c.margin_opponent)}"
    if r.margin is None:
        return f"{stated}; not measured"
    diff, lo, hi, _ = r.margin
    return f"{stated}; measured {_f(diff, '{:+.2f}')} [{_f(lo)}, {_f(hi)}]"


def comparison_table(results: Sequence[Result]) -> list[str]:
    lines = []
    for r in results:
        c = r.claim
        lines.append([dataset_label(c.dataset), c.scope, _label(c.metric), _expected(c),
                      _paper_cell(c, ".2f"),
                      f"{_f(r.subject_mean)} vs {method_label(r.opponent)} {_f(r.opponent_mean)}"
                      if r.opponent else "–",
                      f"{_f(r.diff, '{:+.2f}')} [{_f(r.lo)}, {_f(r.hi)}]" if r.opponent else "–", _margin_cell(r),
                      _f(r.p, "{:.2g}"), r.n or "–", r.verdict + (f": {r.reason}" if r.reason else "")])
    return _table(["Dataset", "Scope", "Metric", "Claim", "Paper (subject vs best opponent)",
                   "Measured (same images)", "Δ [95% CI]", "Stated margin (Δ) [95% CI]", "Wilcoxon p",
                   "Distinct images", "Verdict"], lines)


def _quotes(results: Sequence[Result]) -> list[str]:
    texts = dict.fromkeys(f"{r.claim.section}: {r.claim.text}" for r in results)
    return [f"> {t}" for t in texts] + [""]


def table1_section(results: Sequence[dict], runs: str | Path) -> list[str]:
    head = ["> Table 1: meta-representations raise the logit more than their members' mean: mean difference "
            "1.31 ± 0.05 (1.25–1.41), Cohen's d 0.82 ± 0.04 (0.76–0.88), one-sided p < 1e-202 (t-test), "
            "< 1e-199 (Wilcoxon).", ""]
    if not results:
        return head + [f"Verdict: {NA}: cannot be measured from these rows: no Table 1 rows under "
                       f"`{Path(runs) / 'table1'}` (`python -m scripts.table1` writes them there).", ""]
    lines = []
    for r in results:
        st = r["st"]
        md, cd, tests = st["mean_diff"], st["cohen_d"], st["tests"]
        lines.append([r["cell"], st["n_images"], st["n_pairs"],
                      f"{md['mean']:.2f} ± {md['std']:.2f} ({md['min']:.2f}–{md['max']:.2f})",
                      f"{cd['mean']:.2f} ± {cd['std']:.2f}", f"1e{tests['log10_p_t']:.1f}",
                      f"1e{tests['log10_p_wilcoxon']:.1f}", f"[{r['lo']:.2f}, {r['hi']:.2f}]",
                      f"[{r['d_lo']:.2f}, {r['d_hi']:.2f}]",
                      f"{_f(r['p_images']['t'], '{:.2g}')}, {_f(r['p_images']['wilcoxon'], '{:.2g}')}", r["devices"],
                      r["verdict"]])
    return head + _table(["Cell", "Images", "Pairs", "Mean difference (top ranks)", "Cohen's d", "p (t, pairs)",
                          "p (Wilcoxon, pairs)", "95% CI mean difference (images resampled)", "95% CI Cohen's d",
                          "p over images (t, Wilcoxon; one-sided)", "Device(s)", "Verdict"], lines)


def d1_section(results: Sequence[dict]) -> list[str]:
    head = ["> App. D.1 / Fig. 9: \"Across all clusters, meta representations consistently yield higher logit shifts "
            "than the internal cluster means.\"", "",
            f"Read as: in at least {CONSISTENTLY:.0%} of the (image, group) pairs of a Table 1 cell; interval: "
            f"images resampled.", ""]
    if not results:
        return head + [f"Verdict: {NA}: no Table 1 rows.", ""]
    lines = [[r["cell"], r["images"], r["pairs"], f"{r['share']:.1%}", f"[{r['lo']:.1%}, {r['hi']:.1%}]",
              r["verdict"]] for r in results]
    return head + _table(["Cell", "Images", "Pairs", "Meta above members' mean", "95% CI", "Verdict"], lines)


def table3_section(rows: Sequence[dict]) -> list[str]:
    lo, hi = paper.TAU_RANGE
    head = [f"> Table 3 / App. B: the hyperparameters of each architecture (K, r, tau); \"saliency maps generated "
            f"with tau in [{lo}, {hi}] yield the best visual clarity\".", "",
            "Selections of `scripts/select_hparams.py` (Alg. 2-3, Eq. 10), with the paper's values of the "
            "architecture (EfficientNet's for EfficientNet-Lite). K holds when it equals the paper's; tau when it "
            f"lies in [{lo}, {hi}]; r is shown, not judged (the paper gives no interval).", ""]
    if not rows:
        return head + [f"Verdict: {NA}: no selections found.", ""]
    lines = [[dataset_label(r["dataset"]), model_label(r["model"]), r["images"],
              f"{r['k']} (paper {r['paper'].get('k', '–')})", r["k_verdict"],
              f"{100 * r['r']:.2f} (paper {_f(100 * r['paper']['r']) if 'r' in r['paper'] else '–'})",
              f"{r['tau']:.2f} (paper {r['paper'].get('tau', '–')})", r["tau_verdict"]] for r in rows]
    return head + _table(["Dataset", "Architecture", "Images", "K", "K verdict", "r (%)", "tau", "tau verdict"], lines)


def factor_section(factors: Sequence[dict], magnitudes: Sequence[dict], orderings: Sequence[Result],
                   runtime: Sequence[Result], pronounced: Sequence[dict]) -> list[str]:
    lines = [[dataset_label(r["dataset"]), FAMILIES[r["family"]], _label(r["metric"]) if r["metric"] else "all",
              method_label(r["method"]) if r["method"] else "all", _f(r["paper"], "×{:.2f}"), _f(r["measured"], "×{:.2f}"), r["verdict"]]
             for r in factors]
    mags = [[dataset_label(r["dataset"]), f"ClusCAM / {method_label(r['opponent'])}", _f(r["ratio"], "×{:.2f}"),
             r["verdict"]] for r in magnitudes]
    return (["> App. D.5: on CNNs ClusCAM is ×44.24 slower than GradCAM, its runtime within the same order of "
             "magnitude as ScoreCAM and OptiCAM, \"achieving the best improvements across all three metrics\"; on "
             "ViTs it has the lowest runtime of the three. App. E: faster than ScoreCAM, AblationCAM and OptiCAM on "
             "ViTs.", "",
             "Factors vs GradCAM from the family means (Table 8 of `scripts/tables.py`; AD: GradCAM / method, others: "
             "method / GradCAM). Runtimes depend on the device and precision of the rows (see *Rows compared*).", ""]
            + _table(["Dataset", "Family", "Metric", "Method", "Paper", "Measured", f"Within ×{FACTOR_TOLERANCE:g}"],
                     lines)
            + ["The orderings of Table 8 (ClusCAM's factor against ScoreCAM's and OptiCAM's; the side from the "
               "paper's factors), tested as paired differences of the methods' values:", ""]
            + comparison_table(orderings)
            + ["ClusCAM's seconds per image over ScoreCAM's and over OptiCAM's on CNNs (same order of magnitude: "
               "between ×0.1 and ×10):", ""]
            + _table(["Dataset", "Ratio", "Measured", "Verdict"], mags)
            + ["Runtime orderings on ViTs (App. D.5, App. E):", ""]
            + comparison_table(runtime)
            + ["Sec. 4.4: \"The advantage is even more pronounced on the ViTs\": ClusCAM / ScoreCAM seconds per image "
               "on each family:", ""]
            + _table(["Dataset", "CNNs", "ViTs", "Verdict"],
                     [[dataset_label(r["dataset"]), _f(r["cnn"], "×{:.2f}"), _f(r["vit"], "×{:.2f}"), r["verdict"]]
                      for r in pronounced]))


def passes_section(rows: Sequence[dict]) -> list[str]:
    lines = [[dataset_label(r["dataset"]), model_label(r["model"]), method_label(r["method"]), r["paper"],
              _f(r["expected"], "{:.0f}"), _f(r["measured"], "{:.5g}"), _f(r["bp"], "{:.5g}"), r["verdict"]]
             for r in rows]
    return (["> Table 9: forward passes per image: GradCAM 1, GradCAM++ 1, ScoreCAM N, AblationCAM N, ClusCAM K "
             "(K << N).", "",
             "Measured: forward + partial passes per image (mean over the common images). Expected here: 1 + the "
             "paper's count (every explainer's capture pass), N the channels of the method's hooked layer as its "
             "model config declares them (not a count taken from the measured passes), K from "
             f"ClusCAM's config; ClusCAM's row also needs K << N (1 + K at most 1/{MUCH_SMALLER} of 1 + N).", ""]
            + _table(["Dataset", "Architecture", "Method", "Paper", "Expected here", "Measured FP", "Backward",
                      "Verdict"], lines))


def fig5_section(data: Rows | None, claims: Sequence[Result], levels: Sequence[dict]) -> list[str]:
    counts = (f"{len(data.rows['id'].unique())} images in common to the variants" if data is not None else "no rows")
    lines = [[dataset_label(r["dataset"]), model_label(r["model"]), r["statement"], r["measured"], r["verdict"]]
             for r in levels]
    return (["> " + " ".join(dict.fromkeys(paper.SEC44.values())), "",
             f"The variants of `benchmarks/ablation.py`, one ClusCAM cell each ({counts}; the paper used 500 images).",
             "", *comparison_table(claims)]
            + (["Sec. 4.4's numbers (IC levels: interval of the variant's mean IC; degradations: the variant with "
                "the largest mean degradation among Only logit, Only softmax, Discarding softmax and Only "
                "temp-softmax, the variants without discarding or temperature, judged by its own paired interval "
                "and signed-rank test, then the stated size):", "",
                *_table(["Dataset", "Architecture", "Statement", "Measured [95% CI]", "Verdict"], lines)]
               if lines else []))


def rules(min_architectures: int = MIN_ARCHITECTURES, min_study_images: int = MIN_STUDY_IMAGES) -> str:
    """The rules the report follows, with this run's limits."""
    return f"""\
- **Margins are percentage points.** Every margin the text states is a difference of Table 2's values in
  points, and none is a relative difference: ViTs on ILSVRC, IC 54.71 - 41.28 = 13.43 and AG
  31.22 - 9.00 = 22.22 (relative: 32.5% and 247%); the AD degradations 11.25 - 9.51 = 1.74 (Alzheimer's
  CNNs) and 5.64 - 4.12 = 1.52. The CNN margins are also against OptiCAM, not the second best of each
  metric: IC 59.58 - 41.78 = 17.80 (ILSVRC; ScoreCAM's 47.99 is second) and AG 58.22 - 34.03 = 24.19
  (Alzheimer's; ScoreCAM's 42.71 is second). Δ below is therefore the subject minus its opponent in points.
- **Comparison.** On the image ids all methods of an architecture have, the opponent is the one with
  the best mean (a family: the mean of its architectures' means). Δ = subject - opponent (the mean of
  the architectures' mean paired differences), with a {100 * LEVEL:.0f}% percentile bootstrap interval in which
  the image ids are resampled jointly across the family's architectures (an image seen by several
  architectures is one draw), and the two-sided Wilcoxon signed-rank p of the per-image differences
  averaged over the architectures. *Distinct images* counts image ids, each once. EP and LE use the
  single-box images where both methods have a value.
- **Verdict** of "subject ahead of (behind) the opponent", with the interval oriented so that > 0 is
  better (AD, LE and seconds: lower is better): *{HOLDS}* when it lies entirely on the claimed side
  of 0 and the Wilcoxon p < {ALPHA}, *{FAILS}* when it lies entirely on the other side and p < {ALPHA},
  *{TIE}* otherwise: the interval contains 0 (an exact tie included) or the signed-rank test does
  not confirm it. The paper's numbers decide the side of each row (e.g. its Table 2 puts ClusCAM
  behind OptiCAM in AD on Alzheimer's CNNs and ILSVRC ViTs; its Table 5 puts AG-CAM behind ScoreCAM
  in AG). An architecture the paper has no row for takes the row of the one standing in for it
  (EfficientNet for EfficientNet-Lite), else the paper's general statement where it makes one
  (Sec. 4.2 for AD, IC, AG; App. D.2 for LE on ViTs), and no claim where it makes none.
- **Stated margins are judged.** Where the text states a size (Sec. 4.2's margins; Table 1's mean
  difference and Cohen's d), a direction that holds is *{HOLDS}* only when the interval of the
  difference against the margin's opponent contains the stated difference; otherwise
  *{MARGIN_MISSED} (smaller / larger)*, or *(on the other side of OptiCAM)* where the subject is
  measured on the other side of the margin's opponent. Fig. 5's "up to 18.54% and 23.37%" are
  judged the same way on the variant with the largest mean degradation.
- **Each claim is counted once.** A comparison that a later section repeats with the same numbers (the
  same dataset, architectures, metric, subject, measured opponent and side; e.g. a Table 8 ordering whose
  better opponent is Sec. 4.2's best baseline) keeps its row, says where it is counted, and is counted there.
- **{NA}** when the dataset or family has no rows, a compared method has no rows on an
  architecture (the verdict needs every opponent), a family has fewer than {min_architectures} architectures
  (one architecture is not the family: its own row is in Tables 4, 6, 7; `--min-architectures`), an
  architecture ran on random weights (no trained model), an architecture has fewer paired images than
  the minimum (`--min-images`; Tables 3, 8 and 9 too; Table 1, App. D.1 and Fig. 5, the paper's studies
  on 500-2,000 images, need {min_study_images}: `--min-study-images`), or an interval is undefined.
- **Runtimes** are those of the rows' device (*Rows compared*), judged against the paper's GPU
  figures. **Across precisions** (a bf16 cell against fp32 ones) lower precision makes a cell faster
  (here ScoreCAM's fp32 cells of `results/runs-precision` take 2.1-4.4 times the seconds per image of
  its bf16 cells on the same 20 images), so an ordering is decided when the measured faster side ran
  in fp32 (a slower bf16 opponent would be slower still in fp32), and not otherwise; a ratio or
  factor only when bf16 could only have moved it towards the claim and it still misses: such a
  verdict can only be *{FAILS}*.
- **Table 1** (every groups cell under `<runs>/table1/`, `--where` not applied): images are the unit:
  the one-sided t and Wilcoxon tests run on the per-image mean difference over the top ranks, and the
  intervals of the mean difference and Cohen's d resample images. *{HOLDS}* needs the interval of the
  mean difference above 0 and both one-sided p < {ALPHA}; *{FAILS}*, the interval below 0 and the
  two-sided signed-rank p < {ALPHA}; then the paper's 1.31 and 0.82 are judged as stated sizes.
- **Table 8** is on ILSVRC (its factors are ratios of Table 2's ILSVRC values, e.g. 18.93 / 7.82 = ×2.42),
  and so are App. D.5's statements on it: a factor *{HOLDS}* within ×{FACTOR_TOLERANCE:g} of the paper's; its
  orderings (ClusCAM against the better of ScoreCAM and OptiCAM, per family and metric) are tested as
  paired comparisons.
  **Table 9:** the measured passes equal the expected count.
"""


def summary(sections: Mapping[str, Sequence[str]]) -> list[str]:
    """Verdict counts per section: one per claim."""
    kinds = [verdict_kind(x) for x in VERDICTS]
    lines = [[name, len(vs), *(sum(verdict_kind(v) == k for v in vs) for k in kinds)] for name, vs in sections.items()]
    total = ["All", *(sum(line[i] for line in lines) for i in range(1, len(kinds) + 2))]
    return _table(["Claims", "Distinct claims", *kinds], [*lines, total])


def paper_inconsistencies() -> list[str]:
    """Where the paper's Table 2 is not the mean of its own per-architecture Tables 6 and 7 (to 0.01)."""
    table2 = paper.parse(paper.TABLE2)
    per_arch = {"ilsvrc": paper.parse(paper.TABLE6), "alzheimer": paper.parse(paper.TABLE7)}
    found = []
    for (key, metric), values in table2.items():
        d, f = key.split("/")
        rows = [row for (m, mm), row in per_arch[d].items() if mm == metric and family_of(m) == f]
        for meth, v in values.items():
            mean = float(np.mean([row[meth] for row in rows]))
            if abs(mean - v) > 0.01:
                found.append(f"{dataset_label(d)} {FAMILIES[f]} {metric.upper()} {method_label(meth)}: Table 2 "
                             f"{v:.2f}, mean of the {len(rows)} architectures {mean:.2f}")
    return found


def spreads_section(data: Rows, stats: Stats) -> list[str]:
    """Table 2's spreads (sample std over the family's architectures) beside the measured ones: shown,
    not judged (the text states nothing about them; the measured families have fewer architectures)."""
    table2_std, lines = paper.parse(paper.TABLE2_STD), []
    for d in PAPER_DATASETS:
        for f in FAMILIES:
            models = data.models(d, f)
            for metric in CONFIDENCE:
                measured = {meth: [stats.cells[d, m, meth][metric] for m in models if (d, m, meth) in stats.cells]
                            for meth in paper.ORDER}
                lines.append([dataset_label(d), f"{FAMILIES[f]} ({len(models)})", _label(metric), *(
                    f"{table2_std[f'{d}/{f}', metric][meth]:.2f} / "
                    + (f"{np.std(v, ddof=1):.2f}" if len(v) == len(models) > 1 else "–")
                    for meth, v in measured.items())])
    return (["Table 2's ± (the paper: over six architectures per family) against the same spread over the "
             "architectures measured here (their number in brackets; – below two). Shown, not judged: the text "
             "makes no claim about them.", ""]
            + _table(["Dataset", "Family", "Metric", *(f"{method_label(m)} (paper / here)" for m in paper.ORDER)],
                     lines))


RANDOM_BANNER = ("**Random weights.** Every model of these rows ran on random weights placed in the hub caches "
                 "(a rehearsal of the pipeline, `scripts/rehearse.py`): no number below measures the paper's "
                 "methods, and no claim that needs trained models can be measured.")


def report(data: Rows, runs: str | Path, command: str, resamples: int = 2000, seed: int = 0, min_images: int = 10,
           commit: str | None = None, selections: Sequence[str | Path] = (),
           min_architectures: int = MIN_ARCHITECTURES, ablation: Rows | None = None,
           min_study_images: int = MIN_STUDY_IMAGES, beyond: Sequence[str] = ()) -> str:
    """The Markdown report; ``selections``: folders of Table 3 selections (``<model>.json``); ``ablation``:
    the rows of Fig. 5's variants (:func:`read_ablation`); ``min_study_images``: the fewest images of
    a verdict of the paper's studies (Table 1, App. D.1, Fig. 5); ``beyond``: the lines of the section "Beyond
    the paper" (:func:`benchmarks.beyond.section`), not counted among the paper's claims."""
    from benchmarks.provenance import git_commit

    stats = cell_stats(data.rows, resamples=1, seed=seed)  # means only

    def measured(claims: Sequence[Claim], rows: Rows = data, fewest: int = min_images) -> list[Result]:
        return [compare(rows, c, resamples, seed, fewest, min_architectures) for c in claims]

    family, loc = measured(family_claims(data)), measured(localization_claims(data))
    arch, agcam = measured(architecture_claims(data)), measured(agcam_claims(data))
    orderings, runtime = measured(ordering_claims(data)), measured(runtime_claims(data))
    if ablation is not None:
        ablation.random_weights = data.random_weights
    groups = read_groups(runs)
    t1 = table1_results(groups, resamples, seed, min_study_images, data.random_weights)
    d1 = d1_results(groups, resamples, seed, min_study_images, data.random_weights)
    t3 = table3_rows(selections, min_images, data.random_weights)
    fig5 = measured(fig5_claims(ablation), ablation, min_study_images)
    levels = fig5_levels(ablation, resamples, seed, min_study_images)
    factors = factor_rows(data, stats, min_images, min_architectures)
    mags = order_of_magnitude_rows(data, stats, min_images, min_architectures)
    passes = pass_rows(data, stats, min_images)
    pronounced = pronounced_rows(data, stats, min_images, min_architectures)
    seen: dict[tuple, str] = {}

    def once(section: str, results: Sequence[Result]) -> list[str]:
        """The verdicts of ``results`` not already counted: a comparison repeated by a later section (the
        same dataset, architectures, metric, subject, measured opponent and side) is marked and counted once."""
        out = []
        for r in results:
            c = r.claim
            key = (c.dataset, c.models, c.metric, c.subject, r.opponent, c.expect)
            if key in seen:
                r.reason = "; ".join(filter(None, (r.reason, f"the comparison of {seen[key]}, counted there")))
                continue
            if r.opponent and verdict_kind(r.verdict) != NA:
                seen.setdefault(key, section)
            out.append(r.verdict)
        return out

    counts = {"Sec. 4.2 / Table 2 (families)": once("Sec. 4.2", family),
              "App. D.2 (localization on ViTs)": once("App. D.2", loc),
              "Tables 4, 6, 7 (architectures)": once("Tables 4, 6, 7", arch),
              "Table 5 (AG-CAM)": once("Table 5", agcam),
              "Table 1": [r["verdict"] for r in t1] or [NA],
              "App. D.1 / Fig. 9": [r["verdict"] for r in d1] or [NA],
              "Table 3 (K, tau)": [v for r in t3 for v in (r["k_verdict"], r["tau_verdict"])] or [NA],
              "Sec. 4.4 / Fig. 5 (ablation)": once("Fig. 5", fig5) + [r["verdict"] for r in levels],
              "Table 8 / App. D.5 (factors)": [r["verdict"] for r in factors],
              "Table 8 / App. D.5 (orderings)": once("Table 8's orderings", orderings),
              "App. D.5, App. E, Sec. 4.4 (runtime)": [r["verdict"] for r in mags + pronounced]
              + once("App. D.5, App. E", runtime),
              "Table 9": [r["verdict"] for r in passes]}
    inconsistent = paper_inconsistencies()
    out = ["# Reproduction of the paper's quantitative claims", "",
           "Generated from the per-image rows by `scripts/claims.py`; do not edit by hand.", "",
           *([RANDOM_BANNER, ""] if data.random_weights else []),
           f"- Command: `{command}`", f"- Commit: {commit or git_commit()}",
           f"- Date: {dt.datetime.now(dt.timezone.utc).isoformat(timespec='seconds')}", f"- Runs folder: `{runs}`",
           f"- Bootstrap: {resamples} resamples, seed {seed} (+ CRC32 of the dataset and architecture(s)); "
           f"at least {min_images} paired images per architecture ({min_study_images} for Table 1, App. D.1 and "
           f"Fig. 5), {min_architectures} architectures per family", "",
           "## Summary", "", *summary(counts), "## Rows compared", "", *rows_section(data), "## How to read it", "",
           rules(min_architectures, min_study_images), *(["## The paper's Table 2 against its Tables 6 and 7", "",
                     "Table 2 is the mean of each family's architectures except in these cells (the claims above "
                     "use Table 2 as printed):", "", *(f"- {line}" for line in inconsistent), ""] if inconsistent else []),
           "## Sec. 4.2 and Table 2: ClusCAM against the best baseline per family", "", *_quotes(family),
           *comparison_table(family), "## Table 2: spreads across architectures", "", *spreads_section(data, stats), "## App. D.2: localization on ViTs", "", *_quotes(loc), *comparison_table(loc),
           "## Tables 4, 6 and 7: per architecture", "", *_quotes(arch),
           *comparison_table(arch), "## Table 5: AG-CAM on ViTs", "", *_quotes(agcam), *comparison_table(agcam),
           "## Table 1: meta-representations", "", *table1_section(t1, runs),
           "## App. D.1 and Fig. 9: meta-representations against their members", "", *d1_section(d1),
           "## Table 3: hyperparameters", "", *table3_section(t3),
           "## Sec. 4.4 and Fig. 5: ablation", "", *fig5_section(ablation, fig5, levels),
           "## Table 8: trade-off against GradCAM", "", *factor_section(factors, mags, orderings, runtime, pronounced),
           "## Table 9: passes per image", "", *passes_section(passes),
           *(["## Beyond the paper: Deletion / Insertion, ROAD and the randomization check", "", *beyond] if beyond else [])]
    return "\n".join(out).rstrip() + "\n"
