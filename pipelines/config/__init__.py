"""The pipeline YAML config: schema (pydantic models), loading, derived lengths and the
README reference. Every public name is re-exported here, so callers import
``from deepcast.pipelines.config import X`` whatever module X lives in."""

from deepcast.pipelines.config.derived import Lengths
from deepcast.pipelines.config.load import (
    load_config,
    override_backtest,
    parse_config,
    resolved_config,
)
from deepcast.pipelines.config.reference import reference_markdown
from deepcast.pipelines.config.safe_yaml import load_yaml
from deepcast.pipelines.config.schema import METRICS, PipelineConfig
from deepcast.pipelines.config.schema_data import DataConfig, FeaturesConfig, SqlSource
from deepcast.pipelines.config.schema_models import (
    ENTRY_MODELS,
    MODEL_TYPES,
    EnsembleConfig,
    ModelConfig,
    SearchSpec,
    TuneConfig,
)
from deepcast.pipelines.config.schema_run import (
    DASK_ADDRESS_ENV,
    BacktestConfig,
    DriftConfig,
    EvaluationConfig,
    ExecutionConfig,
    PromotionConfig,
    TrainingConfig,
)

__all__ = [
    "DASK_ADDRESS_ENV", "ENTRY_MODELS", "METRICS", "MODEL_TYPES", "BacktestConfig",
    "DataConfig", "DriftConfig", "EnsembleConfig", "EvaluationConfig", "ExecutionConfig",
    "FeaturesConfig", "Lengths", "ModelConfig", "PipelineConfig", "PromotionConfig",
    "SearchSpec", "SqlSource", "TrainingConfig", "TuneConfig", "load_config",
    "load_yaml", "override_backtest", "parse_config", "reference_markdown", "resolved_config",
]
