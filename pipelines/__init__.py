"""deepcast.pipelines: the stages a run is made of, the pipeline config schema and examples.

The only home of the Great Expectations (``validate``) and MLflow (``tracking``) imports.
"""
