"""Built-in forecaster families, one small file each (imported to register them)."""

from forecasting.models import baselines, lstm  # noqa: F401
