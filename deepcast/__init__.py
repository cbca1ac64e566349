"""deepcast: time-series forecasting pipelines from one YAML file or from Python.

The four parts of the design card install as subpackages: ``deepcast.features`` (data to
arrays), ``deepcast.forecasting`` (the modelling core), ``deepcast.pipelines`` (the stages of
a run) and ``deepcast.flows`` (Prefect flows and the CLI).
"""

__version__ = "0.1.0"
