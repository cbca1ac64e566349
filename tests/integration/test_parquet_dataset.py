"""A Parquet dataset as data.path: a hive-partitioned folder and a glob give the same
validated frame, scores and content hash run to run as the single file; a folder without
Parquet files and a glob over other files are config errors naming the fix."""

from __future__ import annotations

import pandas as pd
import pytest

import deepcast
from tests.conftest import pipeline_dict

pytestmark = pytest.mark.integration

BASELINES = [{"type": "naive"}, {"type": "seasonal_naive"}]


def _partitioned(retail_csv, root):
    """The retail slice as hive partitions (folders bucket=0..2, each series in one)."""
    df = pd.read_csv(retail_csv)
    bucket = df["unique_id"].map(lambda s: sum(map(ord, s)) % 3)
    for b, part in df.groupby(bucket):
        folder = root / f"bucket={b}"
        folder.mkdir(parents=True)
        part.to_parquet(folder / "part-0.parquet", index=False)
    (root / "_SUCCESS").write_text("")  # Spark's marker: not data
    return df


def test_folder_and_glob_read_as_the_single_file(store, tmp_path, retail_csv):
    df = _partitioned(retail_csv, tmp_path / "sales")
    single = tmp_path / "sales.parquet"
    df.to_parquet(single, index=False)

    def run(path):
        return deepcast.train(pipeline_dict(path, name="it-dataset", models=BASELINES))

    one, folder = run(single), run(tmp_path / "sales")
    glob = run(tmp_path / "sales" / "bucket=*" / "*.parquet")
    for other in (folder, glob):
        assert other.n_series == one.n_series and other.n_rows == one.n_rows
        assert [r["mase"] for r in other.table] == [r["mase"] for r in one.table]
    # the same files hash the same; the hash covers every file
    from deepcast.pipelines.ingest import file_sha256

    before = file_sha256(tmp_path / "sales")
    assert file_sha256(tmp_path / "sales") == before
    df.head(3).to_parquet(tmp_path / "sales" / "bucket=0" / "part-1.parquet", index=False)
    assert file_sha256(tmp_path / "sales") != before


def test_partition_keys_are_strings_and_files_are_not_globs(tmp_path, retail_csv):
    from deepcast.pipelines.config import DataConfig
    from deepcast.pipelines.ingest import ingest

    df = pd.read_csv(retail_csv)
    codes = {uid: f"{i:04d}" for i, uid in enumerate(sorted(df["unique_id"].unique()))}
    for uid, part in df.groupby("unique_id"):  # the id lives in the folder names only
        folder = tmp_path / "by_id" / f"unique_id={codes[uid]}"
        folder.mkdir(parents=True)
        part.drop(columns="unique_id").to_parquet(folder / "p.parquet", index=False)
    read = ingest(DataConfig(path=tmp_path / "by_id", freq="MS", season_length=12))
    assert sorted(read["unique_id"].unique()) == sorted(codes.values())  # "0000", not 0
    # an existing file whose name looks like a glob is a file
    odd = tmp_path / "sales[2024].csv"
    df.to_csv(odd, index=False)
    assert len(ingest(DataConfig(path=odd, freq="MS", season_length=12))) == len(df)


def test_dataset_errors_name_the_fix(tmp_path, retail_csv):
    (tmp_path / "empty").mkdir()
    with pytest.raises(deepcast.ConfigError, match="no Parquet files"):
        deepcast.validate(pipeline_dict(tmp_path / "empty", name="it-ds-empty"))
    pd.read_csv(retail_csv).to_csv(tmp_path / "a.csv", index=False)
    with pytest.raises(deepcast.ConfigError, match="matches files that are not Parquet"):
        deepcast.validate(pipeline_dict(tmp_path / "*.csv", name="it-ds-glob"))


def test_other_files_in_a_dataset_folder_are_named_not_read(tmp_path, retail_csv, caplog):
    """A CSV export beside the partitions is not read (as pyarrow and Spark do), and the
    run says so once (before: silently)."""
    from deepcast.pipelines.parquet_dataset import dataset_files

    df = _partitioned(retail_csv, tmp_path / "sales")
    df.to_csv(tmp_path / "sales" / "flat.csv", index=False)
    with caplog.at_level("WARNING", logger="deepcast"):
        files = dataset_files(tmp_path / "sales")
        dataset_files(tmp_path / "sales")
    assert [p.suffix for p in files] == [".parquet"] * 3
    said = [r.getMessage() for r in caplog.records if "not Parquet" in r.getMessage()]
    assert len(said) == 1 and "1 file(s) that are not Parquet were not read (flat.csv)" \
        in said[0]
