"""Evaluation: probe fits equal scikit-learn's, holdouts, permutation test, task labels, bad input, simulated world."""

from __future__ import annotations

import itertools

import numpy as np
import pandas as pd
import pytest
from conftest import TINY_CONFIG, load_config

from rnce.evaluate import ProbeError, bootstrap_scores, permutation_pvalue
from rnce.evaluate import run as evaluation
from rnce.evaluate.probes import holdout_indices
from rnce.evaluate.tasks import TaskError, task_labels, task_table


def _data(n=160, p=12, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, p)) * rng.uniform(0.5, 20, p) + rng.normal(0, 50, p)  # unscaled, off-centre
    Z = (X - X.mean(axis=0)) / X.std(axis=0)
    signal = Z[:, 0] + 0.5 * Z[:, 1]
    y_class = (signal + rng.normal(size=n) > 0.3).astype(float)
    y_reg = 70 + 3 * signal + rng.normal(0, 3, n)
    return X, y_class, y_reg


def _sklearn_scores(X, y, task, hold, l2=1.0):
    """The plain loop the batched probes must reproduce."""
    from sklearn.linear_model import LogisticRegression, Ridge
    from sklearn.metrics import r2_score, roc_auc_score
    from sklearn.preprocessing import StandardScaler

    out = []
    for h in hold:
        train = np.setdiff1d(np.arange(len(y)), h)
        scaler = StandardScaler().fit(X[train])
        if task == "classification":
            model = LogisticRegression(C=1 / l2, tol=1e-10, max_iter=10000).fit(scaler.transform(X[train]), y[train])
            out.append(roc_auc_score(y[h], model.decision_function(scaler.transform(X[h]))))
        else:
            model = Ridge(alpha=l2).fit(scaler.transform(X[train]), y[train])
            out.append(r2_score(y[h], model.predict(scaler.transform(X[h]))))
    return np.array(out)


@pytest.mark.parametrize("task", ["classification", "regression"])
@pytest.mark.parametrize("l2", [1.0, 0.05])
def test_bootstrap_scores_equal_a_plain_scikit_learn_loop(task, l2):
    X, y_class, y_reg = _data()
    y = y_class if task == "classification" else y_reg
    ours = bootstrap_scores(X, y, task, n_boot=12, n_holdout=40, seed=3, l2=l2)
    reference = _sklearn_scores(X, y, task, holdout_indices(y, task, 12, 40, 3), l2)
    np.testing.assert_allclose(ours, reference, atol=1e-6)


def test_small_training_parts_and_more_features_than_subjects_still_match():
    X, y, _ = _data(n=60, p=50, seed=4)  # 30 training subjects, 50 features: far from the full-data fit
    ours = bootstrap_scores(X, y, "classification", n_boot=8, n_holdout=30, seed=1, l2=0.1)
    reference = _sklearn_scores(X, y, "classification", holdout_indices(y, "classification", 8, 30, 1), 0.1)
    np.testing.assert_allclose(ours, reference, atol=1e-6)


def _sklearn_tuned(X, y, task, hold, folds, grid):
    """RidgeCV / LogisticRegressionCV (neg. log loss) with our inner folds and grid, on the standardised training part."""
    from sklearn.linear_model import LogisticRegressionCV, RidgeCV
    from sklearn.metrics import r2_score, roc_auc_score
    from sklearn.preprocessing import StandardScaler

    scores, chosen = [], []
    for b, h in enumerate(hold):
        train = np.flatnonzero(folds[b] >= 0)
        cv = [(np.flatnonzero(folds[b][train] != f), np.flatnonzero(folds[b][train] == f))
              for f in range(folds.max() + 1)]
        scaler = StandardScaler().fit(X[train])
        Xt, Xh = scaler.transform(X[train]), scaler.transform(X[h])
        if task == "regression":
            model = RidgeCV(alphas=grid, cv=cv).fit(Xt, y[train])
            chosen.append(model.alpha_)
            scores.append(r2_score(y[h], model.predict(Xh)))
        else:
            model = LogisticRegressionCV(Cs=list(1 / np.asarray(grid)), cv=cv, scoring="neg_log_loss", tol=1e-10,
                                         max_iter=10000, l1_ratios=(0.0,), use_legacy_attributes=False)
            model.fit(Xt, y[train])
            chosen.append(1 / model.C_)
            scores.append(roc_auc_score(y[h], model.decision_function(Xh)))
    return np.array(scores), np.array(chosen)


@pytest.mark.parametrize("task", ["classification", "regression"])
def test_tuned_probes_equal_scikit_learns_cross_validated_estimators(task):
    from rnce.evaluate.probes import bootstrap_fit
    from rnce.evaluate.tuning import inner_folds

    X, y_class, y_reg = _data(n=120, p=30, seed=7)  # 2 informative of 30 features: the best penalty varies
    y = y_class if task == "classification" else y_reg
    grid = [0.01, 0.3, 3.0, 30.0, 300.0]
    scores, chosen = bootstrap_fit(X, y, task, n_boot=10, n_holdout=30, seed=2, l2="auto", grid=grid, n_folds=4)
    hold = holdout_indices(y, task, 10, 30, 2)
    ref_scores, ref_chosen = _sklearn_tuned(X, y, task, hold, inner_folds(y, hold, task, 4, 2), grid)
    np.testing.assert_array_equal(chosen, ref_chosen)
    assert len(set(chosen)) > 1  # the test is not one fixed penalty in disguise
    np.testing.assert_allclose(scores, ref_scores, atol=1e-6)


def test_tuned_logistic_on_nearly_separable_data_equals_scikit_learn_and_penalises():
    """90 features, 72 inner training subjects: the weak penalties overfit and must lose (an inner fit
    started from a fit that saw its validation fold would make them look good)."""
    from rnce.evaluate.probes import bootstrap_fit
    from rnce.evaluate.tuning import DEFAULT_GRID, inner_folds

    X, y, _ = _data(n=120, p=90, seed=4)
    scores, chosen = bootstrap_fit(X, y, "classification", n_boot=6, n_holdout=30, seed=1, l2="auto")
    hold = holdout_indices(y, "classification", 6, 30, 1)
    ref_scores, ref_chosen = _sklearn_tuned(X, y, "classification", hold,
                                            inner_folds(y, hold, "classification", 5, 1), list(DEFAULT_GRID))
    np.testing.assert_array_equal(chosen, ref_chosen)
    assert chosen.min() >= 1.0
    np.testing.assert_allclose(scores, ref_scores, atol=1e-6)


def test_inner_folds_are_stratified_and_never_use_the_holdout():
    from rnce.evaluate.tuning import inner_folds

    _, y, _ = _data(n=103)
    hold = holdout_indices(y, "classification", 6, 20, 0)
    folds = inner_folds(y, hold, "classification", 5, 0)
    assert (folds[np.arange(6)[:, None], hold] == -1).all() and ((folds >= 0).sum(axis=1) == 83).all()
    for f in range(5):
        positives = ((folds == f) & (y == 1)).sum(axis=1)
        assert positives.max() - positives.min() <= 1 and positives.min() >= 1
    with pytest.raises(ProbeError, match="2 folds"):
        inner_folds(np.r_[1.0, np.zeros(40)], np.array([[5, 6]]), "classification", 5, 0)


def test_tuned_probe_scores_pure_noise_near_zero_where_a_weak_penalty_overfits():
    rng = np.random.default_rng(0)
    X, y = rng.normal(size=(250, 60)), rng.normal(size=250)
    tuned = bootstrap_scores(X, y, "regression", n_boot=40, n_holdout=50, l2="auto")
    weak = bootstrap_scores(X, y, "regression", n_boot=40, n_holdout=50, l2=1e-4)
    assert abs(tuned.mean()) < 0.05
    assert weak.mean() < -0.15
    with pytest.raises(ProbeError, match="positive number or 'auto'"):
        bootstrap_scores(X, y, "regression", n_boot=4, n_holdout=50, l2="best")


def test_holdouts_are_stratified_paired_and_seeded():
    _, y, _ = _data(n=200)
    hold = holdout_indices(y, "classification", 50, 40, seed=5)
    assert hold.shape == (50, 40)
    assert all(len(set(h)) == 40 for h in hold)
    positives = y[hold].sum(axis=1)
    assert positives.min() == positives.max() == round(40 * y.mean())
    assert np.array_equal(hold, holdout_indices(y, "classification", 50, 40, seed=5))
    assert not np.array_equal(hold, holdout_indices(y, "classification", 50, 40, seed=6))
    X, _, _ = _data(n=200)
    a = bootstrap_scores(X, y, "classification", n_boot=5, n_holdout=40, seed=5)
    b = bootstrap_scores(X[:, :3], y, "classification", n_boot=5, n_holdout=40, seed=5)
    assert not np.allclose(a, b)  # same holdouts, other features


def test_permutation_pvalue_against_exact_enumeration():
    rng = np.random.default_rng(0)
    a, b = rng.normal(0.7, 0.05, 10), rng.normal(0.68, 0.05, 10)
    d = a - b
    flips = np.array(list(itertools.product([-1, 1], repeat=10)))
    exact = (np.abs(flips @ d) >= abs(d.sum()) - 1e-12).mean()
    assert permutation_pvalue(a, b, n_perm=20000, seed=1) == pytest.approx(exact, abs=0.015)
    assert permutation_pvalue(a, b, 500, 2) == permutation_pvalue(b, a, 500, 2)  # two-sided
    assert permutation_pvalue(a, a, 100) == 1.0
    c = rng.normal(size=50)
    assert permutation_pvalue(c + 1, c, 999) == pytest.approx(1 / 1000)
    with pytest.raises(ProbeError, match="one length"):
        permutation_pvalue(a, b[:5])


def _clinical():
    rows = [  # cohort, id, session, age, dx, amyloid, years_to_ad, followup
        ("c", "s1", "ses-2", 71, "MCI", 1, 0.0, 0),       # later visit, AD reached by then
        ("c", "s1", "ses-1", 70, "MCI", 1, 1.5, 4.0),     # baseline: converts at 1.5 y -> positive at 2, 3
        ("c", "s2", "ses-1", 66, "CN", 0, None, 2.5),     # no conversion, followed 2.5 y: negative at 2, censored 3
        ("c", "s3", "ses-1", 80, "AD", None, 0.0, 1.0),   # AD at baseline: not at risk; no amyloid
        ("c", "s4", "ses-1", 75, "MCI", 0, 4.0, 6.0),     # converts at 4 y: negative at 2 and 3
        ("d", "s1", "ses-1", 60, "CN", 1, None, 0.5),     # other cohort, same id: its own subject; censored
    ]
    return pd.DataFrame(rows, columns=["cohort", "participant_id", "session_id", "age", "diagnosis", "amyloid",
                                       "years_to_ad", "followup_years"])


def test_task_labels_follow_the_censoring_rule_at_the_baseline_visit():
    labels = task_labels(_clinical(), ["age", "ad_vs_cn", "ad_vs_mci", "conversion", "amyloid"], [2, 3])
    got = {(t, c, p): lab for t, c, p, lab in labels[["task", "cohort", "participant_id", "label"]].to_numpy()}
    assert got[("conversion_2y", "c", "s1")] == 1 and got[("conversion_3y", "c", "s1")] == 1
    assert got[("conversion_2y", "c", "s2")] == 0 and ("conversion_3y", "c", "s2") not in got
    assert got[("conversion_2y", "c", "s4")] == 0 and got[("conversion_3y", "c", "s4")] == 0
    assert ("conversion_2y", "c", "s3") not in got and ("conversion_2y", "d", "s1") not in got
    assert got[("age", "c", "s2")] == 66 and got[("age", "d", "s1")] == 60 and ("age", "c", "s1") not in got
    assert got[("ad_vs_cn", "c", "s3")] == 1 and got[("ad_vs_cn", "c", "s2")] == 0
    assert ("amyloid", "c", "s3") not in got and got[("amyloid", "c", "s1")] == 1
    assert set(labels.loc[labels["participant_id"] == "s1", "session_id"]) == {"ses-1"}


def test_inconsistent_conversion_columns_are_an_error_naming_the_subject():
    table = _clinical()
    table.loc[2, "years_to_ad"] = 0.0
    with pytest.raises(TaskError, match=r"cohort 'c', participant s2 ses-1: columns 'diagnosis' and 'years_to_ad'"):
        task_labels(table, ["conversion"], [2])


def test_a_task_with_too_few_positives_is_skipped_with_a_reason():
    labels = pd.DataFrame({"task": ["rare"] * 300 + ["age"] * 50, "label": [1] * 8 + [0] * 292 + [60.0] * 50})
    table = task_table(labels, ["rare", "age"], n_holdout=100, min_class_size=5)
    rare, age = table.iloc[0], table.iloc[1]
    assert rare["status"] == "skipped" and "8 positive subjects" in rare["reason"] and "(3)" in rare["reason"]
    assert age["status"] == "skipped" and "50 subjects" in age["reason"]
    ok = task_table(labels, ["rare"], n_holdout=100, min_class_size=2)
    assert ok.iloc[0]["status"] == "run" and ok.iloc[0]["n_positive"] == 8


def _evaluation_files(tmp_path, n=60):
    rng = np.random.default_rng(1)
    ids = [f"p{i:03d}" for i in range(n)]
    records = [{"cohort": "ev", "participant_id": p, "session_id": "ses-1", "age": float(rng.uniform(55, 90)),
                "diagnosis": "AD" if i % 3 == 0 else "CN"} for i, p in enumerate(ids)]
    qc = tmp_path / "registration_ev.tsv"
    pd.DataFrame({"participant_id": ids, "session_id": "ses-1", "passed": [i != 5 for i in range(n)]}).to_csv(
        qc, sep="\t", index=False)
    evaluation.write_labels(records, [str(qc)], None, ["ad_vs_cn", "age"], [], 12, 2, str(tmp_path / "labels.tsv"),
                            str(tmp_path / "tasks.tsv"))
    features = pd.DataFrame(rng.normal(size=(n, 4)), columns=[f"dim_{i:02d}" for i in range(4)])
    features["dim_00"] += np.array([r["diagnosis"] == "AD" for r in records]) * 2.0
    table = pd.concat([pd.DataFrame({"participant_id": ids, "session_id": "ses-1", "cohort": "ev"}), features],
                      axis=1)
    return table


def test_probe_and_summary_tables(tmp_path):
    table = _evaluation_files(tmp_path)
    tasks = pd.read_csv(tmp_path / "tasks.tsv", sep="\t")
    assert tasks.set_index("task").loc["ad_vs_cn", "n"] == 59  # one baseline failed registration QC
    assert tasks.set_index("task").loc["ad_vs_cn", "n_qc_excluded"] == 1
    table.drop(index=5).to_csv(tmp_path / "good.tsv", sep="\t", index=False)
    noise = table.drop(index=5).assign(dim_00=np.random.default_rng(2).normal(size=59))
    noise.to_csv(tmp_path / "noise.tsv", sep="\t", index=False)
    paths = []
    for name in ("good", "noise"):
        paths.append(str(tmp_path / f"boot_{name}.tsv"))
        evaluation.probe_feature_set(str(tmp_path / "labels.tsv"), str(tmp_path / "tasks.tsv"),
                                     str(tmp_path / f"{name}.tsv"), name, 40, 12, 0, 1.0, paths[-1])
    scores, pvalues = evaluation.summarise(str(tmp_path / "tasks.tsv"), paths, ["good", "noise"], 500, 0)
    ad = scores[scores["task"] == "ad_vs_cn"].set_index("feature_set")
    assert ad.loc["good", "mean"] > 0.85 > 0.7 > ad.loc["noise", "mean"]
    assert list(scores.columns[:6]) == ["task", "metric", "feature_set", "mean", "sd", "n"]
    row = pvalues[pvalues["task"] == "ad_vs_cn"].iloc[0]
    assert (row["feature_set_a"], row["feature_set_b"]) == ("good", "noise") and row["p_value"] < 0.01


def test_missing_subjects_and_nan_features_are_errors(tmp_path):
    table = _evaluation_files(tmp_path)
    table.drop(index=[7, 8]).to_csv(tmp_path / "short.tsv", sep="\t", index=False)
    args = (str(tmp_path / "labels.tsv"), str(tmp_path / "tasks.tsv"))
    with pytest.raises(ProbeError, match=r"short.tsv: feature set 'x' has no row for 2 baseline image\(s\).*"
                                         r"2 of cohort 'ev'"):
        evaluation.probe_feature_set(*args, str(tmp_path / "short.tsv"), "x", 10, 12, 0, 1.0, str(tmp_path / "o"))
    pd.concat([table, table.iloc[[4]]]).to_csv(tmp_path / "dup.tsv", sep="\t", index=False)
    with pytest.raises(ProbeError, match=r"dup.tsv: .* 2 rows for images listed more than once .*p004 ses-1"):
        evaluation.probe_feature_set(*args, str(tmp_path / "dup.tsv"), "x", 10, 12, 0, 1.0, str(tmp_path / "o"))
    table.loc[9, "dim_02"] = np.nan
    table.to_csv(tmp_path / "nan.tsv", sep="\t", index=False)
    with pytest.raises(ProbeError, match=r"NaN or non-numeric values in 1 image\(s\).*p009 ses-1, column 'dim_02'"):
        evaluation.probe_feature_set(*args, str(tmp_path / "nan.tsv"), "x", 10, 12, 0, 1.0, str(tmp_path / "o"))
    assert not (tmp_path / "o").exists()
    with pytest.raises(ProbeError, match="NaN or infinite in 1 subject"):
        X = np.arange(90.0).reshape(30, 3)
        X[4, 1] = np.nan
        bootstrap_scores(X, np.r_[[0] * 15, [1] * 15], "classification", 5, 10)


def test_simulated_world_fs_features_carry_the_planted_disease_signal(tmp_path):
    """FS features of a simulated evaluate cohort beat chance on AD vs CN, and beat a set without disease signal."""
    from rnce.features.freesurfer import read_subject
    from rnce.simulate import simulate_world

    cfg = load_config(TINY_CONFIG)["simulate"]
    cfg["cohorts"] = {"evaluate": {"n_subjects": 240, "sites": 2, "age_range": [55, 92], "max_visits": 3,
                                   "scanned_visits": 1, "images": False}}
    simulate_world(cfg, tmp_path)
    table = pd.read_csv(tmp_path / "participants" / "evaluate.tsv", sep="\t").assign(cohort="evaluate")
    labels = task_labels(table, ["ad_vs_cn"], [])
    fs = pd.DataFrame([read_subject(tmp_path / "freesurfer" / "evaluate" / f"{p}_{s}").drop("eTIV")
                       for p, s in labels[["participant_id", "session_id"]].to_numpy()])
    latent = pd.read_csv(tmp_path / "truth" / "evaluate_latent.tsv", sep="\t").set_index("participant_id")
    rng = np.random.default_rng(0)
    no_signal = np.column_stack([latent.loc[labels["participant_id"], ["acceleration", "etiv"]].to_numpy(),
                                 rng.normal(size=(len(labels), 8))])
    y = labels["label"].to_numpy()
    with_signal = bootstrap_scores(fs.to_numpy(), y, "classification", n_boot=60, n_holdout=40)
    without = bootstrap_scores(no_signal, y, "classification", n_boot=60, n_holdout=40)
    assert with_signal.mean() > 0.8
    assert without.mean() < 0.65
    assert permutation_pvalue(with_signal, without, 2000) < 0.01


def test_a_summary_where_every_task_was_skipped_still_lists_each_feature_set_with_the_reason(tmp_path):
    _evaluation_files(tmp_path)
    tasks = pd.read_csv(tmp_path / "tasks.tsv", sep="\t", keep_default_na=False)
    tasks.assign(status="skipped", reason="too few").to_csv(tmp_path / "tasks.tsv", sep="\t", index=False)
    paths = [str(tmp_path / "a.tsv"), str(tmp_path / "b.tsv")]
    for path in paths:
        pd.DataFrame(columns=["task", "feature_set", "bootstrap", "score"]).to_csv(path, sep="\t", index=False)
    scores, pvalues = evaluation.summarise(str(tmp_path / "tasks.tsv"), paths, ["a", "b"], 100, 0)
    assert len(scores) == 2 * len(tasks) and (scores["reason"] == "too few").all() and pvalues.empty


def test_figure2_subtitle_says_how_long_each_stage_trained():
    epochs = {"stage1": 2, "stage2": 30, "reconstruction": 2}
    note = evaluation.training_note(["fs", "intensity", "rnce", "lssl"], epochs)
    assert note == ("SSL training: stage 1 2 epochs, stage 2 30 epochs; reconstruction 2 epochs - too short to "
                    "rank the methods")
    long = evaluation.training_note(["fs", "simclr"], {"stage1": 100, "stage2": 100, "reconstruction": 2})
    assert long == "SSL training: stage 1 100 epochs, stage 2 100 epochs"
    assert evaluation.training_note(["fs", "intensity"], epochs) == ""
