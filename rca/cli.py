"""The `rca` command: demo data, ingest, analyze, report, or all of it in one `rca run`.

Exit codes, for scripts: 0 done; 1 a step failed (an AnalysisError: a notebook cell, the
analyzer; or a bug); 2 bad usage or input (an InputError: a missing folder, an unknown suite,
a wrong parameter). Errors are one line on stderr; set RCA_DEBUG=1 to get the traceback of
an unexpected one.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import traceback
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rca.errors import AnalysisError, InputError, ParameterError

if TYPE_CHECKING:
    from rca.options import Option

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2
DEFAULT_DB = "analysis_cache.db"
DEFAULT_RUNS = "benchmark_runs"
DEFAULT_REPORTS = "reports"

EPILOG = """\
exit codes: 0 ok, 1 a step failed (notebook cell, analyzer) or rows were left without an answer, 2 bad usage or input.

quickstart:
  rca run --demo                 demo runs -> analysis -> reports/root_cause_analysis.{ipynb,html}
step by step:
  rca demo benchmark_runs        write demo runs (or point at your own run folders)
  rca ingest benchmark_runs      read failed attempts into analysis_cache.db
  rca analyze --dry-run          what analysis would cost; then without --dry-run
  rca report                     execute the report notebook into reports/
Gemini is used when GEMINI_API_KEY (or GEMINI_API_KEYS) is set; otherwise an offline analyzer."""


def _value(text: str) -> Any:
    """A -p value as papermill reads one, plus JSON lists/objects: 3, 0.5, true, None, [a, b]."""
    lowered = text.strip().lower()
    if lowered in ("none", "null"):
        return None
    if lowered in ("true", "false"):
        return lowered == "true"
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    if text.strip()[:1] in "[{":
        try:
            return json.loads(text)
        except json.JSONDecodeError as exc:
            raise ParameterError(f"-p value {text!r} is not valid JSON: {exc}") from None
    return text


def _params(pairs: Sequence[Sequence[str]] | None) -> dict[str, Any]:
    return {name: _value(value) for name, value in pairs or ()}


# --- subcommands -------------------------------------------------------------------------

def cmd_demo(args: argparse.Namespace) -> int:
    from rca.demo import make_demo

    target = Path(args.dir)
    if target.is_dir() and any(target.iterdir()) and not args.force:
        raise InputError(f"{target} is not empty: choose another folder, or pass --force to write the demo runs into it")
    written = make_demo(target, seed=args.seed)
    print(f"wrote {len(written)} demo runs to {target}:")
    for path in written:
        print(f"  {path}")
    print(f"next: rca run --runs-dir {target}")
    return EXIT_OK


def cmd_ingest(args: argparse.Namespace) -> int:
    from rca.ingest import ingest_runs

    runs = Path(args.runs_dir)
    if not runs.exists():
        raise InputError(f"no runs folder or trace file at {runs}: pass the folder holding <run_id>/trace.jsonl, "
                         f"a trace file or a folder of them (or `rca demo {runs}`)")
    print(ingest_runs(runs, args.db, progress=True, format=args.format, all_failed=args.all_failed,
                      score_threshold=args.score_threshold))
    return EXIT_OK


def cmd_analyze(args: argparse.Namespace) -> int:
    from rca.analyze import analyze_failures
    from rca.options import OPTIONS
    from rca.schema import resolve_taxonomy
    from rca.store import load_failures

    _need_db(args.db)
    try:  # a wrong name or file fails before anything is read
        resolve_taxonomy(args.taxonomy)
    except (ValueError, FileNotFoundError) as exc:
        raise ParameterError(str(exc)) from None
    filters = _filters(args)
    df = load_failures(args.db, **filters, only_unanalyzed=args.only_unanalyzed, limit=args.limit)
    if df.empty:
        print("nothing to analyze: no failed attempts match")
        return EXIT_OK
    options = {option.name: getattr(args, option.name) for option in OPTIONS}
    out = analyze_failures(df, db=args.db, **options)  # progress: a bar on a terminal, lines in a log
    if args.dry_run:  # analyze_failures has printed the estimate
        return EXIT_OK
    _print_categories(out, "failed attempts")
    return _report_failures(out["analysis_error"])


def _report_failures(errors: Any) -> int:
    """Rows without an answer make the command fail, after saying how many and why."""
    from rca.results import failure_summary

    summary = failure_summary(errors)
    if not summary:
        return EXIT_OK
    print(summary, file=sys.stderr)
    return EXIT_FAILED


def cmd_compare(args: argparse.Namespace) -> int:
    from rca.compare import compare_runs

    if not Path(args.db).is_file():
        raise InputError(f"no cache at {args.db}: run `rca ingest RUNS_DIR --db {args.db}` first")
    from rca.patterns import find_patterns
    from rca.store import load_failures

    both = load_failures(args.db, run_ids=[args.before, args.after])
    patterns = find_patterns(both, db=args.db, backend=args.backend) if both["category"].notna().any() else None
    result = compare_runs(args.db, args.before, args.after, patterns=patterns)
    print(result)
    rates = result.pass_rates[result.pass_rates["scope"] != "all"]
    for row in rates.itertuples():
        print(f"  {row.scope:<9} {row.name:<32} {row.before:6.0%} -> {row.after:6.0%}  ({row.change:+.0%})")
    return EXIT_OK


def _filters(args: argparse.Namespace) -> dict[str, list[str]]:
    """The filter flags as load_failures' arguments, checked against the cache: a typo is an error,
    not an empty result."""
    from rca.report import check_filters

    if args.limit is not None and args.limit < 0:
        raise ParameterError(f"--limit must be >= 0, got {args.limit}")
    filters = {"run_ids": args.run or [], "suites": args.suite or [], "generators": args.generator or []}
    check_filters(args.db, **filters)
    return filters


def cmd_patterns(args: argparse.Namespace) -> int:
    from rca.patterns import find_patterns, format_patterns
    from rca.store import load_failures

    _need_db(args.db)
    df = load_failures(args.db, **_filters(args), limit=args.limit)
    if df["category"].isna().all():
        print("no analyzed failures match: run `rca analyze` first")
        return EXIT_OK
    frame = find_patterns(df, db=args.db, backend=args.backend, synthesis_model=args.synthesis_model,
                          force=args.force, timeout=args.timeout)
    print(format_patterns(frame))
    return EXIT_OK


def _patterns_options(p: argparse.ArgumentParser) -> None:
    from rca.options import OPTION

    for name in ("backend", "timeout"):
        _add_option(p, OPTION[name])
    p.add_argument("--synthesis-model", metavar="MODEL",
                   help="Gemini model that finds the patterns; by default $RCA_SYNTHESIS_MODEL, else a Pro model")
    p.add_argument("--force", action="store_true", help="find the patterns again instead of reusing the stored ones")


def _need_db(db: str) -> None:
    if not Path(db).is_file():
        raise InputError(f"no cache at {db}: run `rca ingest RUNS_DIR --db {db}` first")


def cmd_show(args: argparse.Namespace) -> int:
    from rca.show import show_failure

    _need_db(args.db)
    print(show_failure(args.db, args.failure_id, runs_dir=args.runs_dir))
    return EXIT_OK


def cmd_export(args: argparse.Namespace) -> int:
    from rca.export import export_failures, write_export

    _need_db(args.db)
    frame = export_failures(args.db, **_filters(args), limit=args.limit)
    path = write_export(frame, args.output, args.format)
    print(f"wrote {len(frame)} failed attempts to {path}")
    return EXIT_OK


def _print_categories(df: Any, what: str) -> None:
    counts = df["category"].value_counts()
    width = max((len(str(c)) for c in counts.index), default=0)
    print(f"{len(df)} {what}: {int(df['category'].notna().sum())} with a root cause")
    for category, n in counts.items():
        print(f"  {category:<{width}}  {n:>5}  {n / len(df):5.0%}")


def _execute(db: str, runs_dir: str | None, params: dict[str, Any], args: argparse.Namespace) -> int:
    from rca.errors import ReportCellError
    from rca.notebook import execute_report

    try:
        files = execute_report(Path(db).absolute(), Path(runs_dir).absolute() if runs_dir else None, params,
                               args.output_dir, notebook=args.notebook, progress=True)
    except ReportCellError as exc:
        print(f"rca {args.command}: {exc}", file=sys.stderr)
        print(f"rca {args.command}: the partly executed notebook is in {exc.files.notebook} ({exc.files.html})", file=sys.stderr)
        return EXIT_USAGE if exc.bad_input else EXIT_FAILED
    print(f"report:   {files.html}")
    print(f"notebook: {files.notebook}")
    return EXIT_OK


def cmd_report(args: argparse.Namespace) -> int:
    if args.runs_dir is None and not Path(args.db).is_file():
        raise InputError(f"no cache at {args.db}: pass --runs-dir to ingest runs first, or --db an existing analysis_cache.db")
    return _execute(args.db, args.runs_dir, _params(args.param), args)


def cmd_run(args: argparse.Namespace) -> int:
    runs = Path(args.runs_dir)
    has_runs = runs.is_dir() and any(p.is_dir() for p in runs.iterdir())
    if args.demo and not has_runs:
        from rca.demo import make_demo

        written = make_demo(runs)
        print(f"wrote {len(written)} demo runs to {runs}")
    elif args.demo:
        print(f"using the runs already in {runs}")
    elif not runs.is_dir():
        raise InputError(f"no runs folder at {runs}: pass --demo to write demo runs there first, or --runs-dir DIR")
    params = {"analyze": True, **_params(args.param)}
    if params["analyze"]:
        print(f"analyzer: {_analyzer_label(params)}")
    code = _execute(args.db, str(runs), params, args)
    if code == EXIT_OK:
        from rca.report import as_list
        from rca.store import load_failures, unanswered_errors

        filters = {key: as_list(params.get(key), key) for key in ("run_ids", "suites", "generators")}
        covered = load_failures(args.db, **filters, limit=params.get("limit"))  # what the report covered
        _print_categories(covered, "failed attempts in the report")
        if covered["category"].notna().any():
            from rca.patterns import find_patterns, format_patterns

            backend = str(params.get("backend") or "auto")  # the report grouped them already: read from the cache
            print()
            print(format_patterns(find_patterns(covered, db=args.db, backend=backend, progress=False)))
        errors = unanswered_errors(args.db)
        code = _report_failures(errors[errors.index.isin(covered["id"])])
    return code


def _analyzer_label(params: dict[str, Any]) -> str:
    """Which analyzer the notebook will use, said once in the terminal as well as in the report."""
    from rca.backends.registry import choose_backend
    from rca.options import OPTION

    backend, model = (params.get(name, OPTION[name].default) for name in ("backend", "model"))
    engine = choose_backend(str(backend), model, announce=False)
    if engine.name == "heuristic":
        return "offline rule-based (no GEMINI_API_KEY set; set one to analyze with Gemini)"
    return f"Gemini {engine.model}"


def cmd_labels_import(args: argparse.Namespace) -> int:
    from rca.labels import import_labels

    _need_db(args.db)
    result = import_labels(args.file, args.db, labeller=args.labeller, taxonomy=_taxonomy(args.taxonomy))
    print(f"labels: {result.imported} imported from {result.path}")
    for error in result.errors:
        print(error, file=sys.stderr)
    return EXIT_USAGE if result.errors else EXIT_OK


def _taxonomy(value: str) -> Any:
    """The --taxonomy value as a Taxonomy; a wrong name or file is a usage error."""
    from rca.schema import resolve_taxonomy

    try:
        return resolve_taxonomy(value)
    except (ValueError, FileNotFoundError) as exc:
        raise ParameterError(str(exc)) from None


def cmd_validate(args: argparse.Namespace) -> int:
    from rca.agreement import agreement, format_agreement

    _need_db(args.db)
    print(format_agreement(agreement(args.db, **_filters(args), limit=args.limit, seed=args.seed)))
    return EXIT_OK


def cmd_eval(args: argparse.Namespace) -> int:
    from rca.evaluate import default_eval_db, eval_history, evaluate, format_eval, format_history

    if args.history:
        if args.db is None and args.path is None:
            raise ParameterError("rca eval --history needs the data set's PATH or --db EVAL_DB")
        db = args.db or str(default_eval_db(args.path))
        _need_db(db)
        print(format_history(eval_history(db)))
        return EXIT_OK
    if args.path is None or not Path(args.path).exists():
        raise InputError(f"no labelled data set at {args.path}: pass a file or folder of labelled traces"
                         if args.path else "rca eval needs PATH, a labelled data set (or --history)")
    result = evaluate(args.path, db=args.db, format=args.format, backend=args.backend, model=args.model,
                      taxonomy=_taxonomy(args.taxonomy), budget_usd=args.budget_usd, concurrency=args.concurrency,
                      labeller=args.labeller, seed=args.seed, all_failed=args.all_failed, timeout=args.timeout,
                      progress=True)
    print(format_eval(result))
    return EXIT_FAILED if len(result.unanswered) else EXIT_OK


def _eval_options(p: argparse.ArgumentParser) -> None:
    from rca.options import OPTION

    _format_option(p)
    for name in ("backend", "model", "taxonomy", "budget_usd", "concurrency", "timeout"):
        _add_option(p, OPTION[name])


# --- parser ------------------------------------------------------------------------------

def _report_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("-p", "--param", nargs=2, action="append", metavar=("NAME", "VALUE"),
                   help="set a notebook parameter, e.g. -p suites fix_errors -p limit 20 -p analyze false "
                        "(lists as JSON: -p suites '[\"a\", \"b\"]')")
    p.add_argument("--output-dir", default=DEFAULT_REPORTS, help=f"where the .ipynb and .html go (default: {DEFAULT_REPORTS}/)")
    p.add_argument("--notebook", type=Path, help="a notebook file to execute instead of rca's report notebook")


class _Command(argparse.ArgumentParser):
    """A subcommand's parser that adds its `late` flags only when that command is parsed: the
    analysis options come from rca.options and its backend registry, which `rca --help` and
    the other commands need not import."""

    def __init__(self, *args: Any, late: Callable[[argparse.ArgumentParser], None] | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._late = late

    def parse_known_args(self, args: Sequence[str] | None = None, namespace: argparse.Namespace | None = None,
                         ) -> tuple[argparse.Namespace, list[str]]:
        if self._late is not None:
            late, self._late = self._late, None
            late(self)
        return super().parse_known_args(args, namespace)


def filter_options(p: argparse.ArgumentParser) -> None:
    """The same filter flags on every command that selects failures."""
    p.add_argument("--run", "--run-id", dest="run", action="append", metavar="ID", help="only this run (repeatable)")
    p.add_argument("--suite", action="append", metavar="NAME", help="only this suite (repeatable)")
    p.add_argument("--generator", action="append", metavar="NAME", help="only this generator (repeatable)")
    p.add_argument("--limit", type=int, metavar="N", help="at most N failed attempts")


def _format_option(p: argparse.ArgumentParser) -> None:
    from rca.formats import FORMATS

    p.add_argument("--format", default="auto", choices=("auto", *FORMATS),
                   help="auto (default): the harness's runs folder, else each file by its content")


def _analysis_options(p: argparse.ArgumentParser) -> None:
    from rca.options import OPTIONS

    for option in OPTIONS:
        _add_option(p, option)


def _add_option(p: argparse.ArgumentParser, option: Option) -> None:
    """One of rca.options' analysis options as a flag: --name-with-dashes, its default, help and checks."""
    flag = "--" + option.name.replace("_", "-")
    if option.kind is bool:
        p.add_argument(flag, action="store_true", help=option.help)
        return
    shown = f" (default: {option.default})" if option.default is not None else ""
    p.add_argument(flag, default=option.default, choices=option.choices or None, help=option.help + shown,
                   type=_checked(option) if option.minimum is not None else None,
                   metavar=None if option.choices else option.name.rpartition("_")[2].upper())


def _checked(option: Option) -> Callable[[str], Any]:
    """An argparse type: the option's own check, so a bad value is a usage error naming the flag."""
    def convert(text: str) -> Any:
        try:
            return option.check(text)
        except ParameterError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None
    return convert


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="rca", description="Root causes of failed LLM-agent benchmark runs.",
                                     epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND", parser_class=_Command)

    p = sub.add_parser("demo", help="write demo benchmark runs", description="Write three demo benchmark runs in the harness's format.")
    p.add_argument("dir", nargs="?", default=DEFAULT_RUNS, help=f"folder to write them to (default: {DEFAULT_RUNS})")
    p.add_argument("--seed", type=int, default=7, help="same seed, same bytes (default: 7)")
    p.add_argument("--force", action="store_true", help="write into a folder that is not empty")
    p.set_defaults(func=cmd_demo)

    p = sub.add_parser("ingest", help="read failed attempts from run folders or trace files into the cache",
                       description="Read PATH into the cache: the harness's runs folder (PATH/<run_id>/trace.{jsonl,yaml}) "
                                   "run by run, or any file or folder of other agents' traces, each file in the format "
                                   "that recognizes it. What was read already is skipped.", late=_format_option)
    p.add_argument("runs_dir", nargs="?", default=DEFAULT_RUNS, metavar="PATH", help=f"(default: {DEFAULT_RUNS})")
    p.add_argument("--db", default=DEFAULT_DB, help=f"the cache (default: {DEFAULT_DB}; created if missing)")
    p.add_argument("--all-failed", action="store_true",
                   help="every trace in the files is a failure, not only those that say so (not for the harness's runs)")
    p.add_argument("--score-threshold", type=float, default=1.0, metavar="X",
                   help="a scored case fails below this score (Inspect logs, ATIF rewards; default 1.0: below full marks)")
    p.set_defaults(func=cmd_ingest)

    p = sub.add_parser("analyze", help="find the root cause of each failed attempt",
                       description="Analyze failed attempts from the cache; answers are cached, so a re-run "
                                   "only asks again when model, taxonomy, prompt or trace changed (or --force).",
                       late=_analysis_options)
    p.add_argument("--db", default=DEFAULT_DB, help=f"(default: {DEFAULT_DB})")
    filter_options(p)
    p.add_argument("--only-unanalyzed", action="store_true", help="skip rows that already have a root cause")
    p.set_defaults(func=cmd_analyze)

    p = sub.add_parser("show", help="one failure in the terminal: case, task, root cause, the blamed step, evidence",
                       description="Print one failure: its case and task, the answer (category, explanation, fix, "
                                   "agent), the blamed step with the steps around it, and the evidence.")
    p.add_argument("failure_id", type=int, metavar="FAILURE_ID", help="the failure's id (the `id` column)")
    p.add_argument("--db", default=DEFAULT_DB, help=f"(default: {DEFAULT_DB})")
    p.add_argument("--runs-dir", help="where to look for the trace when its recorded path has moved")
    p.set_defaults(func=cmd_show)

    p = sub.add_parser("export", help="failures with their answers to CSV, JSON lines or Parquet",
                       description="Write one row per failed attempt with its latest answer, in stable columns "
                                   "(rca.export.COLUMNS).")
    p.add_argument("--db", default=DEFAULT_DB, help=f"(default: {DEFAULT_DB})")
    p.add_argument("--format", choices=("csv", "jsonl", "parquet"), default="csv", help="file format (default: csv)")
    p.add_argument("--output", required=True, metavar="FILE", help="the file to write")
    filter_options(p)
    p.set_defaults(func=cmd_export)

    p = sub.add_parser("patterns", help="the recurring root causes, ranked by failed cases: what to fix first",
                       description="Group the analyzed failures into specific recurring causes (Gemini when a key is "
                                   "set, else offline) and rank them by failed cases; causes outside the agent are "
                                   "listed apart. Stored in the cache: a re-run over unchanged answers calls nothing.",
                       late=_patterns_options)
    p.add_argument("--db", default=DEFAULT_DB, help=f"(default: {DEFAULT_DB})")
    filter_options(p)
    p.set_defaults(func=cmd_patterns)

    p = sub.add_parser("compare", help="what changed between two runs: pass rates, cases, patterns",
                       description="Compare run AFTER with run BEFORE: pass rate per suite and generator in each, the "
                                   "cases newly failing, newly passing and failing in both.")
    p.add_argument("before", metavar="RUN_A", help="the earlier run's id")
    p.add_argument("after", metavar="RUN_B", help="the later run's id")
    p.add_argument("--db", default=DEFAULT_DB, help=f"(default: {DEFAULT_DB})")
    p.add_argument("--backend", choices=("auto", "gemini", "heuristic"), default="auto",
                   help="who groups the patterns: auto (Gemini when a key is set), gemini, heuristic (offline)")
    p.set_defaults(func=cmd_compare)

    p = sub.add_parser("report", help="execute the report notebook into .ipynb and standalone .html",
                       description="Execute the report notebook (the one write_notebook.py writes) with papermill on the cache "
                                   "(after ingesting --runs-dir, if given). The notebook analyzes rows not yet "
                                   "analyzed unless -p analyze false.")
    p.add_argument("--db", default=DEFAULT_DB, help=f"(default: {DEFAULT_DB})")
    p.add_argument("--runs-dir", help="ingest these run folders first")
    _report_options(p)
    p.set_defaults(func=cmd_report)

    p = sub.add_parser("run", help="the whole job: (demo runs ->) ingest -> analyze -> report",
                       description="Ingest --runs-dir, analyze, and write reports/root_cause_analysis.{ipynb,html}.")
    p.add_argument("--demo", action="store_true", help="write demo runs into --runs-dir first, unless it already holds runs")
    p.add_argument("--runs-dir", default=DEFAULT_RUNS, help=f"(default: {DEFAULT_RUNS})")
    p.add_argument("--db", default=DEFAULT_DB, help=f"(default: {DEFAULT_DB})")
    _report_options(p)
    p.set_defaults(func=cmd_run)

    p = sub.add_parser("labels", help="labels of failures (category, step, agent) to grade the answers against",
                       description="Labels say what caused a failure; `rca validate` and `rca eval` grade the "
                                   "answers against them.")
    actions = p.add_subparsers(dest="action", required=True, metavar="ACTION")
    q = actions.add_parser("import", help="import labels from a CSV or JSONL file",
                           description="Import labels: columns failure_id (or run_id, benchmark_name, attempt_number), "
                                       "then category, step, agent, labeller, note. A labeller's new label of a "
                                       "failure replaces their old one; each bad line is reported, the good ones kept.")
    q.add_argument("file", metavar="FILE", help="a .csv, or .jsonl with an object a line")
    q.add_argument("--db", default=DEFAULT_DB, help=f"(default: {DEFAULT_DB})")
    q.add_argument("--labeller", metavar="NAME", help="the labeller of lines that name none")
    q.add_argument("--taxonomy", default="default", help="the categories' taxonomy: a built-in name or a "
                                                         ".yaml/.json file (default: default)")
    q.set_defaults(func=cmd_labels_import)

    p = sub.add_parser("validate", help="how far to trust the answers: agreement with the labels",
                       description="Grade the analyzed failures that have labels, per taxonomy, model and labeller: "
                                   "category accuracy and Cohen's kappa, confusion matrix, precision and recall, step "
                                   "and agent accuracy with bootstrap 95%% intervals, accuracy by confidence; then "
                                   "labeller against labeller.")
    p.add_argument("--db", default=DEFAULT_DB, help=f"(default: {DEFAULT_DB})")
    filter_options(p)
    p.add_argument("--seed", type=int, default=0, help="the bootstrap's seed (default: 0)")
    p.set_defaults(func=cmd_validate)

    p = sub.add_parser("eval", help="grade an analyzer on a labelled data set, beside trivial guesses",
                       description="Ingest a labelled data set into its own cache, analyze it, and print agent and "
                                   "step accuracy beside always the first step, always the last and a random one; "
                                   "each eval is recorded with its settings (--history lists them).", late=_eval_options)
    p.add_argument("path", nargs="?", metavar="PATH", help="the labelled data set (e.g. a folder of multi-agent logs)")
    p.add_argument("--db", metavar="EVAL_DB", help="the eval's cache (default: rca-eval-<name of PATH>.db here)")
    p.add_argument("--labeller", default="dataset", metavar="NAME",
                   help="whose labels to grade against (default: dataset, the data set's own)")
    p.add_argument("--seed", type=int, default=0, help="the random guesser's and the bootstrap's seed (default: 0)")
    p.add_argument("--all-failed", action="store_true", help="every trace in the files is a failure")
    p.add_argument("--history", action="store_true", help="list the evals recorded in the eval's cache, side by side")
    p.set_defaults(func=cmd_eval)
    return parser


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("rca")
    except PackageNotFoundError:
        return "unknown"


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; returns its exit code (the console script exits with it)."""
    args = build_parser().parse_args(argv)
    func: Callable[[argparse.Namespace], int] = args.func
    try:
        return func(args)
    except (InputError, FileNotFoundError) as exc:
        print(f"rca {args.command}: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except AnalysisError as exc:
        print(f"rca {args.command}: stopped: {exc}", file=sys.stderr)
        return EXIT_FAILED
    except KeyboardInterrupt:
        print(f"rca {args.command}: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # a bug or an environment fault: say what, keep the trace on request
        if os.environ.get("RCA_DEBUG"):
            traceback.print_exc()
        print(f"rca {args.command}: failed: {type(exc).__name__}: {exc} (RCA_DEBUG=1 shows the traceback)", file=sys.stderr)
        return EXIT_FAILED


if __name__ == "__main__":
    raise SystemExit(main())
