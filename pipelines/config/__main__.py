"""``python -m deepcast.pipelines.config``: print the README's pipeline YAML reference."""

from deepcast.pipelines.config.reference import reference_markdown

print(reference_markdown(), end="")
