"""Great Expectations adapter: run the rules as one GE suite; build GE Data Docs.

The only module of deepcast that imports great_expectations, and only inside functions, so
importing it (and the validate stage) is cheap. GE sees the frame of helper columns built
by :func:`deepcast.pipelines.validation.rules.build_suite`; each rule becomes one
expectation (its ``expectation`` class with ``gx_kwargs``), tagged with the rule's name.
"""

from __future__ import annotations

import gc
import logging
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from deepcast.features.errors import DataError
from deepcast.pipelines.validation.report import MAX_EXAMPLES
from deepcast.pipelines.validation.rules import Rule

DOCS_DIR = "data_docs"
DOCS_SITE = "deepcast"
_SUITE_LOCK = threading.Lock()  # GE suites of the threads of one process, one at a time
# a checked frame from this size on is freed at once after its suite (see _validate)
COLLECT_FROM_BYTES = 32 * 2**20
_TEMPLATES: Any = None  # the process's jinja bytecode cache of GE's Data Docs templates


@dataclass(frozen=True)
class Outcome:
    """GE's verdict on one rule: the expectation type, pass or fail, offending rows."""

    expectation: str
    success: bool
    unexpected_count: int


def run_suite(
    check: pd.DataFrame, rules: list[Rule], suite_name: str
) -> tuple[dict[str, Outcome], Any]:
    """Run the suite on an ephemeral context.

    Returns ({rule name: outcome}, GE suite result). GE keeps one process-wide current
    context, so suites of several threads (a fan-out in threads, a server validating in
    parallel) take turns instead of sharing it. :class:`DataError` when GE cannot run.
    """
    with _SUITE_LOCK:
        try:
            result = _validate(check, rules, suite_name)
        except Exception as exc:  # GE could not run at all: not a data problem
            raise DataError(
                f"Great Expectations could not run the validation suite: "
                f"{type(exc).__name__}: {exc}",
                hint="check the great-expectations installation (great-expectations==1.24.1)",
            ) from exc
        return _outcomes(result, rules), result


def _validate(check: pd.DataFrame, rules: list[Rule], suite_name: str) -> Any:
    """The GE run itself, leaving nothing of the frame in GE's current context."""
    import great_expectations as gx
    import great_expectations.expectations as gxe
    from great_expectations.data_context.types.base import ProgressBarsConfig

    for name in ("great_expectations", "great_expectations.data_context.types.base"):
        logging.getLogger(name).setLevel(logging.WARNING)  # GE pins the second to INFO

    context = gx.get_context(mode="ephemeral")
    context.variables.progress_bars = ProgressBarsConfig(globally=False)
    batch = (
        context.data_sources.add_pandas("deepcast")
        .add_dataframe_asset("long_frame")
        .add_batch_definition_whole_dataframe("whole")
    )
    suite = context.suites.add(_new_suite(gx, gxe, suite_name, rules))
    vdef = context.validation_definitions.add(
        gx.ValidationDefinition(data=batch, suite=suite, name=suite_name)
    )
    with _no_batch_fingerprint():
        result = vdef.run(
            batch_parameters={"dataframe": check},
            result_format={
                "result_format": "SUMMARY",
                "partial_unexpected_count": MAX_EXAMPLES,
            },
        )
    # GE keeps the last context as its current project, and with it the frame and every
    # metric computed on it (17 row masks at 10M rows: 250 MB) until the next context
    context.data_sources.delete("deepcast")
    del vdef, batch, suite, context
    # GE's objects hold them in reference cycles: a large frame's are freed now; a small
    # one's wait for the collector (a full collection costs 0.2-0.5 s of CPU in a process
    # that has loaded TensorFlow, more than a small frame's suite itself)
    if int(check.memory_usage(index=True).sum()) >= COLLECT_FROM_BYTES:
        gc.collect()
    return result


def _outcomes(result: Any, rules: list[Rule]) -> dict[str, Outcome]:
    """{rule name: outcome} from GE's suite result; DataError if a rule has none."""
    outcome: dict[str, Outcome] = {}
    for evr in result.results:
        key = (evr.expectation_config.meta or {}).get("deepcast_check")
        info = evr.exception_info or {}
        if info.get("raised_exception"):
            raise DataError(
                f"Great Expectations failed on {evr.expectation_config.type}: "
                f"{info.get('exception_message')}",
                hint="this is a bug in deepcast's validation suite; please report it",
            )
        count = (evr.result or {}).get("unexpected_count")
        outcome[key] = Outcome(evr.expectation_config.type, bool(evr.success), int(count or 0))
    missing = [r.name for r in rules if r.name not in outcome]
    if missing:
        raise DataError(f"Great Expectations returned no result for checks {missing}")
    return outcome


def _new_suite(gx: Any, gxe: Any, name: str, rules: list[Rule]) -> Any:
    """One GE expectation per rule, tagged with the rule's name."""
    suite = gx.ExpectationSuite(name=name)
    for rule in rules:
        exp = getattr(gxe, rule.expectation)(**rule.gx_kwargs, description=rule.gx_text)
        exp.meta = {"deepcast_check": rule.name}
        suite.add_expectation(exp)
    return suite


@contextmanager
def _no_batch_fingerprint() -> Iterator[None]:
    """Turn off GE's fingerprint of pandas batches while the suite runs.

    GE hashes every pandas batch under 1 GB (``hash_pandas_object``, index included) for a
    batch marker: at 10M rows that is 5x the frame's memory and most of the suite's time,
    for a marker deepcast does not use (runs log their own data hash). The setting is put
    back afterwards, so other GE users in the process keep it (suites run one at a time,
    under ``_SUITE_LOCK``, so none restores it while another runs).
    """
    from great_expectations.execution_engine import pandas_execution_engine as engine

    saved = engine.HASH_THRESHOLD
    engine.HASH_THRESHOLD = 0
    try:
        yield
    finally:
        engine.HASH_THRESHOLD = saved


def build_data_docs(report_dir: Path, result: Any, rules: list[Rule], suite_name: str) -> str:
    """Store the run's result in a file context rooted in ``report_dir``; build the HTML.

    Returns the path of the Data Docs index page.
    """
    import great_expectations as gx
    import great_expectations.expectations as gxe
    from great_expectations.data_context.types.resource_identifiers import (
        ExpectationSuiteIdentifier,
        ValidationResultIdentifier,
    )

    if result is None:
        raise RuntimeError("no validation result to render")
    _share_compiled_templates()
    context = gx.get_context(mode="file", project_root_dir=str(report_dir))
    docs_dir = report_dir / DOCS_DIR
    _set_docs_site(context, docs_dir)
    context.suites.add_or_update(_new_suite(gx, gxe, suite_name, rules))
    suite_id = ExpectationSuiteIdentifier(name=suite_name)
    result_id = ValidationResultIdentifier(
        expectation_suite_identifier=suite_id,
        run_id=result.meta["run_id"],
        batch_identifier="long_frame",
    )
    context.validation_results_store.store_validation_results(
        suite_validation_result=result,
        suite_validation_result_identifier=result_id,
        expectation_suite_identifier=suite_id,
    )
    context.build_data_docs(site_names=[DOCS_SITE])
    index = docs_dir / "index.html"
    if not index.is_file():
        raise RuntimeError(f"GE did not write {index}")
    return str(index)


def _share_compiled_templates() -> None:
    """Let every GE Data Docs view of this process share one cache of compiled templates.

    Each view makes its own jinja ``Environment`` and so compiles GE's ~50 templates again
    on every build: 0.5 s of a 0.95 s build of the demo's docs on 2 CPU cores. Jinja's
    bytecode cache (kept in memory, keyed by template name and checked against the source)
    compiles each once per process; the HTML is the same. Installed once, idempotent.
    """
    global _TEMPLATES
    from great_expectations.render.view import view

    with _SUITE_LOCK:
        if _TEMPLATES is not None:
            return
        import jinja2

        class MemoryBytecodeCache(jinja2.BytecodeCache):
            def __init__(self) -> None:
                self.store: dict[str, bytes] = {}

            def load_bytecode(self, bucket: jinja2.bccache.Bucket) -> None:
                if bucket.key in self.store:
                    bucket.bytecode_from_string(self.store[bucket.key])

            def dump_bytecode(self, bucket: jinja2.bccache.Bucket) -> None:
                self.store[bucket.key] = bucket.bytecode_to_string()

        _TEMPLATES = MemoryBytecodeCache()
        init = view.DefaultJinjaView.__init__

        def with_shared_cache(self: Any, *args: Any, **kwargs: Any) -> None:
            init(self, *args, **kwargs)
            self.env.bytecode_cache = _TEMPLATES

        view.DefaultJinjaView.__init__ = with_shared_cache


def _set_docs_site(context: Any, docs_dir: Path) -> None:
    """Make deepcast's site (files under ``docs_dir``) the context's only Data Docs site."""
    site = {
        "class_name": "SiteBuilder",
        "show_how_to_buttons": False,
        "store_backend": {
            "class_name": "TupleFilesystemStoreBackend",
            "base_directory": str(docs_dir),
        },
        "site_index_builder": {"class_name": "DefaultSiteIndexBuilder"},
    }
    sites = context.variables.data_docs_sites or {}
    if DOCS_SITE in sites:
        context.update_data_docs_site(DOCS_SITE, site)
    else:
        context.add_data_docs_site(DOCS_SITE, site)
    for other in [s for s in sites if s != DOCS_SITE]:
        context.delete_data_docs_site(other)
