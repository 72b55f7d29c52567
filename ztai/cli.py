"""`ztai`: the operator CLI.

    ztai preview --stack NAME [--json | --quiet] [--export EXPORT [--force]] [--policy-config PATH]
    ztai policy analyze --file EXPORT [--json | --quiet] [--policy-config PATH]
    ztai weights encrypt|decrypt ...      (ztai/weights_cmd.py)
    ztai tokenize|detokenize ...          (ztai/tokenize_cmd.py)
    ztai truststore build|check|issue-test-client ...  (ztai/truststore_cmd.py)
    ztai access request|approve|deny|revoke|list ...  (ztai/access_cmd.py)
    ztai verify --stack NAME [--state FILE] ...  (ztai/verify_cmd.py)
    ztai trail verify PATH [--public-keys FILE] ...  (ztai/trail_cmd.py)
    ztai detect PATH... [--json] [--rules DIR] [--state FILE] ...  (ztai/detect_cmd.py)

The exit codes are listed once, in `ztai.errors.EXIT_CODES`, and shown under every command's
--help and in docs/cli.md (generated from this parser by `python -m ztai.clidoc`).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import runpy
import sys
import tempfile
import textwrap
import tomllib
import traceback
from collections.abc import Callable, Mapping, Sequence
from importlib.metadata import PackageNotFoundError
from importlib.metadata import version as package_version
from pathlib import Path
from typing import Any, NoReturn

from ztai import (
    access_cmd,
    config_cmd,
    detect_cmd,
    tokenize_cmd,
    trail_cmd,
    truststore_cmd,
    verify_cmd,
    weights_cmd,
)
from ztai.errors import (
    EXIT_BROKEN_PIPE,
    EXIT_CODES,
    EXIT_FAILURE,
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_USAGE,
    EXIT_VIOLATION,
    PolicyPackError,
    UsageError,
)
from ztai.project import find_project, use_project

DEFAULT_PACK = Path("policy_packs/zero_trust")
# The repository this CLI ships in: the default pack is found from anywhere.
REPOSITORY = Path(__file__).resolve().parent.parent
DISTRIBUTION = "zero-trust-ai"


def exit_codes_text() -> str:
    return "exit status:\n" + "\n".join(f"  {code:<4} {meaning}" for code, meaning in EXIT_CODES)


class _Formatter(argparse.HelpFormatter):
    """Wraps prose line by line; an indented line (an entry of the exit-code list) is wrapped under
    its own text, after the code."""

    def _fill_text(self, text: str, width: int, indent: str) -> str:
        lines = []
        for line in text.splitlines():
            entry = re.match(r"\s+\S+\s+", line)
            hanging = indent + " " * entry.end() if entry else indent
            lines.append(textwrap.fill(line.strip(), width, initial_indent=indent + line[:len(line) - len(
                line.lstrip())], subsequent_indent=hanging))
        return "\n".join(lines)


class _Parser(argparse.ArgumentParser):
    """Every `ztai` parser, subcommands included (argparse builds them with the parent's class),
    lists the exit codes under its help."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        # A command's own epilog says what the codes mean for it; the shared list always follows.
        note = kwargs.pop("epilog", None)
        kwargs["epilog"] = exit_codes_text() + (f"\n\n{note}" if note else "")
        kwargs.setdefault("formatter_class", _Formatter)
        super().__init__(*args, **kwargs)


def version() -> str:
    """This checkout's version (pyproject.toml), or the installed distribution's."""
    try:
        project = tomllib.loads((REPOSITORY / "pyproject.toml").read_text(encoding="utf-8"))["project"]
        if project.get("name") == DISTRIBUTION:
            return str(project["version"])
    except (OSError, KeyError, TypeError, tomllib.TOMLDecodeError):
        pass  # not a source checkout: an installed copy knows its version from its metadata
    try:
        return package_version(DISTRIBUTION)
    except PackageNotFoundError:
        return "unknown"


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="ztai", description="zero-trust-ai operator CLI: offline preview and "
                                              "policy checks of the stack, and the runtime tools "
                                              "for weights, tokens and the API truststore.")
    parser.add_argument("--version", action="version", version=f"%(prog)s {version()}",
                        help="print the version and exit")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND",
                                     help="what to do (`ztai COMMAND --help` for its options)")

    preview = commands.add_parser(
        "preview", help="offline preview of a stack with its policy check",
        description="Run the program (`__main__.py`) with stacks/Pulumi.NAME.yaml under Pulumi's "
                    "mock monitor, then the policy pack through its gRPC analyzer. Works from any directory "
                    "inside the project: Pulumi.yaml is looked for upward from there.")
    preview.add_argument("--stack", required=True, metavar="NAME",
                         help="stack name: its configuration is stacks/Pulumi.NAME.yaml")
    _report_options(preview)
    preview.add_argument("--export", type=Path, metavar="EXPORT",
                         help="also write the recorded resources as a `pulumi stack export` file, "
                              "for `ztai policy analyze --file`")
    preview.add_argument("--force", action="store_true", help="replace EXPORT if it exists")
    preview.add_argument("--unknowns", action="store_true",
                         help="leave ids and computed outputs unknown, as a first real `pulumi "
                              "preview` does, to check the policies under those conditions")
    _policy_options(preview,
                    config_default=" (default: the stack's own stacks/policy/STACK.json when it exists)",
                    pack_default="PROJECT/" + str(DEFAULT_PACK) + ", PROJECT being the "
                                          "directory holding Pulumi.yaml")
    preview.add_argument("--project-dir", type=Path, metavar="DIR",
                         help="directory holding Pulumi.yaml (default: the nearest one at or "
                              "above the current directory)")

    policy = commands.add_parser("policy", help="policy pack commands",
                                 description="Run the policy pack outside a preview.")
    policy_commands = policy.add_subparsers(dest="policy_command", required=True, metavar="COMMAND",
                                            help="what to do with the policy pack")
    analyze = policy_commands.add_parser(
        "analyze", help="run the policy pack over a `pulumi stack export` file",
        description="The offline counterpart of `pulumi policy analyze`: every violating resource "
                    "is named by its URN.")
    analyze.add_argument("--file", type=Path, required=True, metavar="EXPORT",
                         help="a `pulumi stack export` document (deployment version 3), as "
                              "`pulumi stack export --file` or `ztai preview --export` writes it")
    analyze.add_argument("--stack", metavar="NAME",
                         help="the stack whose configuration (stacks/Pulumi.NAME.yaml of the project "
                              "found upward from the current directory) the pack reads, as the "
                              "engine hands it: a split deployment's layer is checked as that "
                              "layer. It must be the stack the export is of. Default: no "
                              "configuration, the stack is checked as a combined one")
    _report_options(analyze)
    _policy_options(analyze, pack_default="the project's (found upward from the current directory), "
                                          "else this repository's " + str(DEFAULT_PACK))

    # Runtime commands: each module adds its parsers and sets `handler` (args -> exit status).
    for module in (weights_cmd, tokenize_cmd, truststore_cmd, config_cmd, access_cmd, verify_cmd,
                   trail_cmd, detect_cmd):
        module.register(commands)
    return parser


def _report_options(command: argparse.ArgumentParser) -> None:
    output = command.add_mutually_exclusive_group()
    output.add_argument("--json", action="store_true",
                        help="one JSON document on stdout (resources, policies, violations, "
                             "exclusions, warnings, summary) instead of the text report")
    output.add_argument("--quiet", action="store_true",
                        help="print only the policy results: violations, exclusions, disabled "
                             "policies and the summary")


def _policy_options(command: argparse.ArgumentParser, pack_default: str,
                    config_default: str = "") -> None:
    command.add_argument("--policy-config", type=Path, metavar="PATH",
                         help="policy configuration JSON, as `pulumi preview --policy-pack-config` "
                              f"takes it: enforcement levels and exclusions per policy{config_default}")
    command.add_argument("--policy-pack", type=Path, metavar="DIR",
                         help=f"policy pack directory (default: {pack_default})")


def _policy_config(path: Path | None) -> dict[str, Any]:
    from ztai.policy.config import PolicyConfigError, load_policy_config
    if path is None:
        return {}
    try:
        return load_policy_config(path)
    except PolicyConfigError as error:
        raise UsageError(str(error)) from None


def _pack_dir(given: Path | None, candidates: list[Path]) -> Path:
    """The pack given, or the first default candidate that is a pack."""
    for path in [given] if given is not None else candidates:
        if (path / "PulumiPolicy.yaml").is_file():
            return path
    where = given if given is not None else " or ".join(str(path) for path in candidates)
    raise UsageError(f"{where} is not a policy pack (no PulumiPolicy.yaml); pass --policy-pack DIR")


def _warn(warnings: list[str]) -> None:
    for warning in warnings:
        print(f"warning: {warning}", file=sys.stderr)


def _emit(text: str) -> None:
    """Write the report in full or raise BrokenPipeError.

    Straight to the file descriptor: a buffered text stream can drop the rest of a large write
    without an error when the reader goes away mid-way (`| head`), and then exit 0 as if all was
    read. Streams without a descriptor (a test's capture) get an ordinary write."""
    try:
        descriptor = sys.stdout.fileno()
    except (AttributeError, OSError, ValueError):  # io.UnsupportedOperation is both
        sys.stdout.write(text)
        return
    sys.stdout.flush()
    data = memoryview(text.encode(sys.stdout.encoding or "utf-8", errors="backslashreplace"))
    while data:
        data = data[os.write(descriptor, data):]


def _finish(result: Any, text: str, document: str, as_json: bool) -> int:
    _emit(document if as_json else text)
    return EXIT_VIOLATION if result.mandatory_violations else EXIT_OK


def _preview(args: argparse.Namespace) -> int:
    project_dir = use_project(args.project_dir or find_project(Path.cwd()))
    from ztai.stackfile import StackFileError, load_stack, shared_target_warnings
    try:
        stack_file = load_stack(project_dir, args.stack)
    except StackFileError as error:
        raise UsageError(str(error)) from None
    user_config = _policy_config(args.policy_config or _stack_policy_file(project_dir, args.stack))
    pack_dir = _pack_dir(args.policy_pack, [project_dir / DEFAULT_PACK])
    if args.export and args.export.exists() and not args.force:  # said now, not after the run
        raise UsageError(f"{args.export} exists; pass --force to replace it")
    # Warnings go to stderr as they come and into the JSON report at the end.
    warnings = [*stack_file.warnings, *shared_target_warnings(stack_file)]
    _warn(warnings)

    key_layer = _key_layer_of(stack_file)
    if key_layer is None:
        recorded, result, more = _record_and_check(args, stack_file, stack_file.config, {},
                                                   pack_dir, user_config)
        return _report(args, [(stack_file, recorded, result, [*warnings, *more])], pack_dir)

    # A workload stack of a split deployment (docs/deploying.md): previewed as its first
    # deployment goes. The key layer as it is first deployed (the keys, no grants yet) gives the
    # workload its key ARNs; the workload is checked; then the key layer is checked with the
    # workload's grants, as it is deployed once its grants file holds them.
    reference, key_file = key_layer
    try:
        key_stack = load_stack(project_dir, key_file)
    except StackFileError as error:
        raise UsageError(f"{stack_file.stack} is a workload stack whose keyLayerStack is {reference}: "
                         f"{error}") from None
    grants_key = f"{stack_file.project}:workloadGrantsFile"
    # What the other layer has when each is deployed: known values, even with --unknowns (the key
    # layer exists before the workload's first preview; the workload before the key layer's next).
    from ztai.preview.recorder import existing_resources

    first_keys = _record(args, key_stack, {**key_stack.config, grants_key: ""}, {}, unknowns=False)
    references = {reference: first_keys.stack_outputs}
    # The roles the workload reads by name (the key layer's identity part), as the key layer left them.
    existing = existing_resources(first_keys)
    deployed = _record(args, stack_file, stack_file.config, references, unknowns=False, existing=existing)
    ledger = deployed.stack_outputs.get("keyGrants")
    with tempfile.TemporaryDirectory(prefix="ztai-grants-") as scratch:
        grants = Path(scratch) / "grants.json"
        grants.write_text(json.dumps(ledger), encoding="utf-8")
        sealed_config = {**key_stack.config, grants_key: str(grants)}
        sealed = _record(args, key_stack, sealed_config, {}, unknowns=False)
        # The key policies name the workload's roles, the rotation schedule is the workload's, the
        # workload's buckets use the key layer's keys: each layer's stack-wide policies see the
        # other layer's resources too, as the environment is deployed.
        recorded, result, more = _record_and_check(
            args, stack_file, stack_file.config, references, pack_dir, user_config,
            context=[r for r in sealed.resources[1:] if r.custom], existing=existing)
        # The key layer is previewed once the workload is deployed: its resources are known.
        key_config = (user_config if args.policy_config else
                      _policy_config(_stack_policy_file(project_dir, key_stack.stack)))
        sealed, sealed_result, sealed_more = _record_and_check(
            args, key_stack, sealed_config, {}, pack_dir, key_config,
            context=[r for r in deployed.resources[1:] if r.custom])
    return _report(args, [(stack_file, recorded, result, [*warnings, *more]),
                          (key_stack, sealed, sealed_result, sealed_more)], pack_dir)


def _stack_policy_file(project_dir: Path, stack: str) -> Path | None:
    """The stack's own policy configuration, `stacks/policy/<stack>.json` (its exclusions, each with
    a reason, approved by the code owners), when it has one: what the CI recipe passes as
    `--policy-pack-config` (docs/ci.md)."""
    path = project_dir / "stacks" / "policy" / f"{stack}.json"
    return path if path.is_file() else None


class ProgramLoggedError(Exception):
    """The program logged errors (the preview stops and says them)."""


def _key_layer_of(stack_file: Any) -> tuple[str, str] | None:
    """(keyLayerStack, the key layer's stack name) of a workload stack; None for another layer."""
    if stack_file.config.get(f"{stack_file.project}:layer") != "workload":
        return None
    reference = str(stack_file.config.get(f"{stack_file.project}:keyLayerStack") or "")
    if reference.count("/") != 2:
        return None  # the program reports the missing or malformed key
    return reference, reference.rsplit("/", 1)[-1]


def _record(args: argparse.Namespace, stack_file: Any, config: Mapping[str, str],
            stack_outputs: Mapping[str, Any],
            on_register: Callable[[Any], None] | None = None, *, unknowns: bool | None = None,
            existing: Mapping[tuple[str, str], Any] | None = None) -> Any:
    import pulumi

    from ztai.preview.recorder import record
    program_path = stack_file.project_dir.resolve() / "__main__.py"

    def program() -> None:
        runpy.run_path(str(program_path), run_name="__main__")

    try:
        recorded = record(program, project=stack_file.project, stack=stack_file.stack,
                          config=dict(config), region=stack_file.region or "us-east-1",
                          on_register=on_register,
                          unknowns=args.unknowns if unknowns is None else unknowns,
                          stack_outputs=stack_outputs, existing=existing)
    except pulumi.RunError as error:
        # RunError is how the program reports a user error (e.g. StackConfigError).
        raise UsageError(str(error)) from None
    if recorded.errors:
        raise ProgramLoggedError("error: the program logged errors:\n" + "\n".join(recorded.errors))
    return recorded


def _record_and_check(args: argparse.Namespace, stack_file: Any, config: Mapping[str, str],
                      stack_outputs: Mapping[str, Any], pack_dir: Path,
                      user_config: Any, context: Sequence[Any] = (),
                      existing: Mapping[tuple[str, str], Any] | None = None) -> tuple[Any, Any, list[str]]:
    """Run the program for `stack_file` with `config` under the mocks, the pack checking each
    resource as it is registered; (recorded stack, pack result, warnings). `context`: resources
    of another layer the stack-wide policies also see (a key layer's rotation schedule and JIT API
    are the workload's), not reported as this stack's."""
    from ztai.export import for_analysis
    from ztai.policy.analyzer import AnalysisSession, PolicyPackProcess, pack_environment
    from ztai.policy.config import PolicyConfigError, unmatched_exclusions

    environment = pack_environment(stack_file.project, stack_file.stack, dict(config), True)

    warnings: list[str] = []
    # The pack boots and is configured on the other core while the program runs, and each
    # resource is analysed as it is registered, as the engine does.
    with PolicyPackProcess(pack_dir, env=environment) as pack:
        session = AnalysisSession(pack, user_config=user_config, project=stack_file.project,
                                  stack=stack_file.stack, stack_config=dict(config))
        recorded = _record(args, stack_file, config, stack_outputs,
                           on_register=lambda resource: session.submit(for_analysis(resource)),
                           existing=existing)
        _warn(recorded.warnings)  # as `pulumi preview` shows them, beside the report
        warnings += recorded.warnings
        session.submit(for_analysis(recorded.resources[0]))  # the root stack, described after the run
        try:
            # The stack reference the program read is in the engine's view of the stack too.
            result = session.finish([*(for_analysis(r) for r in [*recorded.resources, *context]),
                                     *(for_analysis(r, read=True) for r in recorded.reads)])
        except PolicyConfigError as error:
            raise UsageError(f"policy config: {error}") from None
    # What a policy finds on the other layer's resources is that layer's check's to report.
    others = {r.urn for r in context}
    result.violations = [v for v in result.violations if v.urn not in others]
    stale = unmatched_exclusions(user_config, [(r.name, r.urn) for r in recorded.resources])
    _warn(stale)
    return recorded, result, [*warnings, *stale]


def _report(args: argparse.Namespace, checked: list[tuple[Any, Any, Any, list[str]]],
            pack_dir: Path) -> int:
    """Export (the first stack) and print each checked stack's report; the exit code of the worst."""
    from ztai.export import to_export
    from ztai.report import ReportResource, render_json, render_text

    if args.export:
        recorded = checked[0][1]
        document = to_export(recorded, _pulumi_version())
        try:
            args.export.write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")
        except OSError as error:
            raise UsageError(f"cannot write {args.export}: {error.strerror}") from None
        if not args.quiet:
            print(f"wrote {len(document['deployment']['resources'])} resources to {args.export}",
                  file=sys.stderr)
    documents, texts = [], []
    for stack_file, recorded, result, warnings in checked:
        resources = [ReportResource(urn=r.urn, type=r.type, name=r.name, parent=r.parent,
                                    custom=r.custom, protect=r.protect, inputs=r.inputs)
                     for r in recorded.resources]
        if args.json:
            documents.append(render_json(
                mode="preview", project=stack_file.project, stack=stack_file.stack,
                resources=resources, outputs=recorded.stack_outputs, result=result,
                warnings=warnings))
            continue
        layer = stack_file.config.get(f"{stack_file.project}:layer", "combined")
        texts.append(render_text(
            title=f"Previewing update ({stack_file.stack}, {layer} layer) offline, under Pulumi's mock "
                  f"monitor{' with unknown ids and outputs' if args.unknowns else ''}:",
            resources=resources, outputs=recorded.stack_outputs, result=result,
            pack_label=f"local: {pack_dir}", plan="create", quiet=args.quiet))
    failed = any(result.mandatory_violations for _, _, result, _ in checked)
    if args.json:
        # One stack: its report, as before; a split deployment: {"stacks": [workload, keys]}.
        _emit(documents[0] if len(documents) == 1 else json.dumps(
            {"stacks": [json.loads(document) for document in documents]}, indent=2))
    else:
        _emit("\n".join(texts))
    return EXIT_VIOLATION if failed else EXIT_OK


def _analyze(args: argparse.Namespace) -> int:
    from ztai.export import ExportFileError, analyzed_resources, load_export, unknown_value_warnings
    try:
        document = load_export(args.file)
    except ExportFileError as error:
        raise UsageError(str(error)) from None
    try:
        stack, project, analyzed = analyzed_resources(document)
    except ExportFileError as error:
        raise UsageError(f"stack export {args.file}: {error}") from None
    # An empty export passes every policy: a CI gate pointed at the wrong file would go green.
    if not any(r.custom and not r.type.startswith("pulumi:providers:") for r in analyzed):
        raise UsageError(f"stack export {args.file} holds no cloud resources, so every policy would "
                         "pass; analyse the export of a deployed stack (`pulumi stack export --file "
                         "FILE`) or of a preview (`ztai preview --export FILE`)")
    user_config = _policy_config(args.policy_config)
    candidates = [REPOSITORY / DEFAULT_PACK]
    with contextlib.suppress(UsageError):  # outside any project: this repository's pack
        candidates.insert(0, find_project(Path.cwd()) / DEFAULT_PACK)
    pack_dir = _pack_dir(args.policy_pack, candidates)

    from ztai.policy.analyzer import PolicyPackProcess, analyze, pack_environment
    from ztai.policy.config import PolicyConfigError, unmatched_exclusions
    from ztai.report import ReportResource, render_json, render_text

    stack_config = _analyzed_stack_config(args.stack, stack, args.file)
    with PolicyPackProcess(pack_dir, env=pack_environment(project, stack, stack_config, False)) as pack:
        try:
            result = analyze(pack, analyzed, user_config=user_config, project=project, stack=stack,
                             stack_config=stack_config, dry_run=False)
        except PolicyConfigError as error:
            raise UsageError(f"policy config: {error}") from None
    warnings = [*unknown_value_warnings(document),
                *unmatched_exclusions(user_config, [(r.name, r.urn) for r in analyzed])]
    _warn(warnings)
    resources = [ReportResource(urn=r.urn, type=r.type, name=r.name, parent=r.parent,
                                custom=r.custom, protect=r.protect, inputs=dict(r.properties))
                 for r in analyzed]
    if args.json:
        return _finish(result, "", render_json(mode="analyze", project=project, stack=stack,
                                               resources=resources, outputs=None, result=result,
                                               warnings=warnings), True)
    text = render_text(title=f"Policy analysis of {args.file} (stack {stack or '?'}):",
                       resources=resources, outputs=None, result=result,
                       pack_label=f"local: {pack_dir}", plan="analyse", quiet=args.quiet)
    return _finish(result, text, "", False)


def _analyzed_stack_config(name: str | None, exported: str, path: Path) -> dict[str, str]:
    """The configuration of the stack `--stack` names, which must be the one the export is of."""
    if name is None:
        return {}
    if name != exported:
        raise UsageError(f"--stack {name}: the stack export {path} is stack {exported or '?'}'s "
                         "(its URNs say so); give the stack the export is of")
    from ztai.stackfile import StackFileError, load_stack
    try:
        return dict(load_stack(find_project(Path.cwd()), name).config)
    except StackFileError as error:
        raise UsageError(f"--stack {name}: {error}") from None


def _pulumi_version() -> str:
    return package_version("pulumi")


def _run(args: argparse.Namespace) -> int:
    if args.command == "preview":
        try:
            return _preview(args)
        except ProgramLoggedError as error:
            print(error, file=sys.stderr)
            return EXIT_FAILURE
    if args.command == "policy":
        return _analyze(args)
    status: int = args.handler(args)
    return status


def _silence_stdout() -> None:
    """After a broken pipe: point stdout at /dev/null so the final flush cannot fail again."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    os.close(devnull)


def main(argv: list[str] | None = None) -> int:
    """Run one command; every outcome is an exit status, a traceback only for a real bug (3)."""
    try:
        return _run(_parser().parse_args(argv))
    except UsageError as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_USAGE
    except PolicyPackError as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_FAILURE
    except KeyboardInterrupt:
        print("\nztai: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        _silence_stdout()
        return EXIT_BROKEN_PIPE
    except Exception:  # noqa: BLE001 - a bug in the program or the CLI: show everything
        traceback.print_exc()
        print("error: this is a bug in ztai or the program; the traceback above says where",
              file=sys.stderr)
        return EXIT_FAILURE


def entry() -> NoReturn:
    """The `ztai` command (`[project.scripts]`) and `python -m ztai`."""
    try:
        status = main()
    except SystemExit as done:  # argparse: --help, --version and usage errors
        status = done.code if isinstance(done.code, int) else (EXIT_OK if done.code is None
                                                              else EXIT_USAGE)
    try:
        sys.stdout.flush()
    except BrokenPipeError:
        _silence_stdout()
        status = EXIT_BROKEN_PIPE
    with contextlib.suppress(BrokenPipeError):  # nowhere left to say anything
        sys.stderr.flush()
    # Skip interpreter teardown: unloading the thousands of pulumi_aws classes costs ~0.25 s and
    # there is nothing left to clean up (files are closed, the policy pack process is stopped).
    os._exit(status)
