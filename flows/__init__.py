"""deepcast.flows: Prefect flows around the jobs of deepcast.pipelines.runs, the ``deepcast`` CLI
and the Python API (``api.py``, re-exported by ``import deepcast``)."""
