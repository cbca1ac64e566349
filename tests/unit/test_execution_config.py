"""The `execution:` section: serial by default; Dask settings validated; the scheduler
address from the YAML or DEEPCAST_DASK_ADDRESS."""

import pytest

from deepcast.features.errors import ConfigError
from deepcast.pipelines.config import DASK_ADDRESS_ENV, parse_config
from tests.conftest import pipeline_dict


def test_serial_by_default_and_dask_settings(retail_csv, monkeypatch):
    monkeypatch.delenv(DASK_ADDRESS_ENV, raising=False)
    ex = parse_config(pipeline_dict(retail_csv)).execution
    assert (ex.runner, ex.workers, ex.threads_per_worker, ex.scheduler_address) == \
        ("serial", 2, 1, None)
    ex = parse_config(pipeline_dict(retail_csv, execution={"runner": "dask", "workers": 4})
                      ).execution
    assert ex.runner == "dask" and ex.workers == 4 and ex.scheduler_address is None


def test_address_from_yaml_wins_over_the_environment(retail_csv, monkeypatch):
    monkeypatch.setenv(DASK_ADDRESS_ENV, "tcp://10.0.0.5:8786")
    ex = parse_config(pipeline_dict(retail_csv, execution={"runner": "dask"})).execution
    assert ex.scheduler_address == "tcp://10.0.0.5:8786"
    ex = parse_config(pipeline_dict(retail_csv, execution={
        "runner": "dask", "address": "tcp://sched:8786"})).execution
    assert ex.scheduler_address == "tcp://sched:8786"


@pytest.mark.parametrize("execution, expected", [
    ({"runner": "spark"}, "execution.runner: Input should be 'serial' or 'dask'"),
    ({"runner": "dask", "workers": 0}, "execution.workers: Input should be greater than"),
    ({"runner": "dask", "cores": 2}, "execution.cores: unknown key; allowed keys here: "
     "address, memory_limit, runner, shard_rows, threads_per_worker, workers"),
    ({"memory_limit": "lots"}, "execution.memory_limit: String should match pattern"),
    ({"shard_rows": 0}, "execution.shard_rows: Input should be greater than or equal to 1"),
])
def test_bad_execution_settings_name_the_key(retail_csv, execution, expected):
    with pytest.raises(ConfigError) as info:
        parse_config(pipeline_dict(retail_csv, execution=execution), source="p.yaml")
    assert expected in str(info.value) and info.value.exit_code == 2
