"""Shard plans (whole series, sorted, about shard_rows rows), merged validation reports
(counts add up, examples keep their shard) and the forecast folder's commit rules."""

from __future__ import annotations

import os

import pandas as pd
import pytest

from deepcast.features.errors import ConfigError
from deepcast.pipelines import forecast_folder as folder
from deepcast.pipelines.shards import pack, plan_source, read_shard
from deepcast.pipelines.validation.merge import merge_reports
from deepcast.pipelines.validation.report import ExpectationResult, ValidationReport


def test_pack_keeps_series_whole_in_sorted_order():
    counts = pd.Series({"c": 5, "a": 3, "b": 4, "d": 20})
    shards = pack(counts, target_rows=8)
    assert [s.ids for s in shards] == [("a", "b"), ("c",), ("d",)]
    assert [s.rows for s in shards] == [7, 5, 20] and {s.count for s in shards} == {3}
    assert shards[0].label == "shard 1/3 (series a .. b, 2 series)"
    assert pack(pd.Series(dtype="int64"), 8) == []


def test_plan_and_read_a_parquet_file(tmp_path):
    df = pd.DataFrame({"store": [3, 1, 1, 2, 3, 3], "ds": range(6), "y": range(6)})
    df.to_parquet(tmp_path / "s.parquet", index=False)
    shards = plan_source(tmp_path / "s.parquet", "store", target_rows=3)
    assert [(s.ids, s.rows) for s in shards] == [((1, 2), 3), ((3,), 3)]
    rows = read_shard(tmp_path / "s.parquet", shards[1], "store", {"store", "y"})
    assert rows.columns.tolist() == ["store", "y"] and rows["y"].tolist() == [0, 4, 5]
    (tmp_path / "s.csv").write_text("a,b\n")
    with pytest.raises(ConfigError, match="not Parquet"):
        plan_source(tmp_path / "s.csv", "store", 3)


def _check(failed: int, examples: list[dict]) -> ExpectationResult:
    return ExpectationResult("expect_unique", "ds", failed == 0, failed, "unique (id, ds)",
                             "drop duplicates", examples)


def _report(rows: int, failed: int, examples: list[dict], dropped: dict) -> ValidationReport:
    return ValidationReport(success=failed == 0, source="s", n_rows=rows, n_series=2,
                            results=[_check(failed, examples)], dropped_series=dropped,
                            interpolated=1, quarantined=failed,
                            quarantine_reasons={"dup": failed} if failed else {})


def test_merged_report_sums_counts_and_names_failing_shards():
    ex = [{"row": i, "unique_id": "x"} for i in range(4)]
    merged = merge_reports([_report(10, 0, [], {"a": 2}), _report(7, 4, ex, {}),
                            _report(5, 3, ex[:3], {"b": 1})], ["s1", "s2", "s3"], "data")
    assert not merged.success and (merged.n_rows, merged.n_series) == (22, 6)
    check = merged.results[0]
    assert check.unexpected_count == 7 and len(check.examples) == 5
    assert [e["shard"] for e in check.examples] == ["s2"] * 4 + ["s3"]
    assert merged.dropped_series == {"a": 2, "b": 1} and merged.interpolated == 3
    assert merged.quarantine_reasons == {"dup": 7}
    assert "2 of 3 shards failed validation: s2; s3" in merged.summary()


def test_rows_left_out_after_the_last_value_are_summed_over_shards():
    """One warning for the panel (before: one per shard, each with its own count)."""
    from deepcast.pipelines.validation.report import trailing_warning

    reports = [_report(10, 0, [], {}), _report(7, 0, [], {}), _report(5, 0, [], {})]
    for r, (rows, series) in zip(reports, [(3, 1), (0, 0), (12, 2)], strict=True):
        r.trailing_rows, r.trailing_series = rows, series
        r.warnings = ["other"]  # (a shard's report has the counts, not the warning)
    merged = merge_reports(reports, ["s1", "s2", "s3"], "data")
    said = [w for w in merged.warnings if "after the last observed y" in w]
    assert said == [trailing_warning(15, 3)] and said[0].startswith("15 row(s)")
    assert "s1: other" in merged.warnings and (merged.trailing_rows,
                                               merged.trailing_series) == (15, 3)


def test_rules_of_one_expectation_and_column_stay_apart():
    """Two rules checked as the same GE expectation on the same column (the target's
    finite and non-negative checks are both value sets) keep their own counts."""
    def rule(description: str, failed: int) -> ExpectationResult:
        return ExpectationResult("expect_column_values_to_be_in_set", "y", failed == 0,
                                 failed, description, "fix it", [])

    reports = [ValidationReport(success=False, source="s", n_rows=5, n_series=1,
                                results=[rule("y finite", a), rule("y >= 0", b)],
                                dropped_series={}, interpolated=0)
               for a, b in ((1, 0), (0, 2))]
    merged = merge_reports(reports, ["s1", "s2"], "data")
    assert [(r.description, r.unexpected_count) for r in merged.results] == [
        ("y finite", 1), ("y >= 0", 2)]


def test_rows_without_a_series_id_come_with_the_first_shard(tmp_path):
    """The planners count the rows with no ID and give them to shard 1, so validation sees
    (and reports) them as it would reading the whole source."""
    from deepcast.pipelines.shards import plan_frame

    df = pd.DataFrame({"id": ["b", None, "a", "b", None], "y": range(5)})
    df.to_parquet(tmp_path / "s.parquet", index=False)
    for shards in (plan_source(tmp_path / "s.parquet", "id", 2), plan_frame(df, "id", 2)):
        assert [(s.ids, s.rows, s.nulls) for s in shards] == [
            (("a",), 3, True), (("b",), 2, False)]
    rows = read_shard(tmp_path / "s.parquet", plan_source(tmp_path / "s.parquet", "id", 2)[0],
                      "id", None)
    assert sorted(rows["y"]) == [1, 2, 4]
    only = pd.DataFrame({"id": [None, None], "y": [1, 2]})
    only.to_parquet(tmp_path / "n.parquet", index=False)
    (shard,) = plan_source(tmp_path / "n.parquet", "id", 2)
    assert shard.label == "shard 1/1 (rows without a series ID)"
    assert len(read_shard(tmp_path / "n.parquet", shard, "id", None)) == 2


def test_a_panel_rule_passes_when_a_shard_passes_it():
    """whole_panel: 'some series fills a window' fails in a shard of short series only, and
    the panel passes as one process would say; other checks still fail the panel."""
    def report(fits: bool, dup: int) -> ValidationReport:
        window = ExpectationResult("expect_column_values_to_be_in_set", "unique_id", fits,
                                   0 if fits else 3, "longest series has N rows", "h",
                                   check="lookback_fits")
        return ValidationReport(success=fits and not dup, source="s", n_rows=5, n_series=1,
                                results=[window, _check(dup, [])], dropped_series={},
                                interpolated=0)

    merged = merge_reports([report(True, 0), report(False, 0)], ["s1", "s2"], "d",
                           whole_panel=True)
    assert merged.success and all(r.success for r in merged.results)
    assert not merge_reports([report(True, 0), report(False, 0)], ["s1", "s2"], "d").success
    merged = merge_reports([report(True, 0), report(False, 2)], ["s1", "s2"], "d",
                           whole_panel=True)
    assert not merged.success and "1 of 2 shards failed validation: s2" in merged.summary()


def test_folder_output_rules(tmp_path):
    assert folder.is_folder_output("out") and folder.is_folder_output("out.d/")
    assert not folder.is_folder_output("out.csv") and not folder.is_folder_output("sql://t")
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "keep.txt").write_text("x")
    with pytest.raises(ConfigError, match="did not write"):
        folder.check_folder(mine)
    out = tmp_path / "out"
    for night in (1, 2):  # the second commit replaces the first whole
        folder.check_folder(out)
        staging = folder.staging_folder(out)
        part = folder.PART.format(night)
        (staging / part).write_text("")
        folder.write_manifest(staging, {"writer": folder.WRITER, "pipeline": "p", "rows": 0,
                                        "model_version": "1", "parts": [{"file": part}]})
        folder.commit(staging, out)
    assert sorted(p.name for p in out.iterdir()) == [folder.MANIFEST, "part-00002.parquet"]
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []
    # a file added to deepcast's folder, or another tool's manifest, is never deleted
    (out / "README.txt").write_text("mine")
    with pytest.raises(ConfigError, match="not part of the forecast .*README.txt"):
        folder.check_folder(out)
    (out / "README.txt").unlink()
    # what Finder or Explorer leaves in a folder it showed is not the user's: replaced too
    for name in (".DS_Store", "._part-00002.parquet", "Thumbs.db"):
        (out / name).write_bytes(b"\0")
    assert folder.check_folder(out) == out
    staging = folder.staging_folder(out)
    folder.write_manifest(staging, {"writer": folder.WRITER, "pipeline": "p", "rows": 0,
                                    "model_version": "1", "parts": []})
    folder.commit(staging, out)
    assert sorted(p.name for p in out.iterdir()) == [folder.MANIFEST]
    shown = tmp_path / "shown"  # a new folder the user opened: as good as empty
    shown.mkdir()
    (shown / ".DS_Store").write_bytes(b"\0")
    assert folder.check_folder(shown) == shown
    (mine / "keep.txt").unlink()
    (mine / folder.MANIFEST).write_text('{"version": 1, "files": ["a.bin"]}')
    with pytest.raises(ConfigError, match="did not write"):
        folder.check_folder(mine)
    (mine / folder.MANIFEST).write_text('{"writer": "other", "pipeline": "p", "rows": 1, '
                                        '"model_version": "1", "parts": []}')
    with pytest.raises(ConfigError, match="not a deepcast forecast's"):
        folder.check_folder(mine)
    # a folder of an earlier deepcast (no "writer" in its manifest) is still replaced
    (mine / folder.MANIFEST).write_text('{"pipeline": "p", "rows": 1, "model_version": "1", '
                                        '"parts": []}')
    assert folder.check_folder(mine) == mine


def test_the_committed_folder_holds_only_what_its_manifest_lists(tmp_path):
    """A killed worker's temporary part left in staging is not committed (the next night
    would refuse the folder as not wholly deepcast's); a file added to the output folder
    while the shards ran is found at commit, and nothing is deleted."""
    out = tmp_path / "out"
    staging = folder.staging_folder(out)
    part = folder.PART.format(0)
    (staging / part).write_text("")
    (staging / f".{part}.123.tmp").write_text("half")
    folder.write_manifest(staging, {"writer": folder.WRITER, "pipeline": "p", "rows": 0,
                                    "model_version": "1", "parts": [{"file": part}]})
    folder.commit(staging, out)
    assert sorted(p.name for p in out.iterdir()) == [folder.MANIFEST, part]
    staging = folder.staging_folder(out)  # the next night ...
    folder.write_manifest(staging, {"writer": folder.WRITER, "pipeline": "p", "rows": 0,
                                    "model_version": "1", "parts": []})
    (out / "notes.txt").write_text("mine")  # ... while a user adds a file
    with pytest.raises(ConfigError, match="notes.txt"):
        folder.commit(staging, out)
    assert (out / "notes.txt").read_text() == "mine" and (out / part).exists()


def test_leftovers_of_a_dead_run_are_cleaned_and_a_set_aside_folder_restored(tmp_path):
    dead = 2**22 + 12345  # above Linux's default pid_max: no such process
    out = tmp_path / "out"
    aside = tmp_path / f".out.old-{dead}"
    aside.mkdir()
    (aside / folder.MANIFEST).write_text("{}")
    staging = tmp_path / f".out.staging-{dead}"
    staging.mkdir()
    live = tmp_path / f".out.staging-{os.getpid()}"
    live.mkdir()
    folder.remove_dead(out)
    assert (out / folder.MANIFEST).is_file() and not aside.exists()
    assert not staging.exists() and live.exists()
