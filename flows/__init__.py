"""deepcast.flows: Prefect flows around the pipeline stages, and the ``deepcast`` CLI."""
