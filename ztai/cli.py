"""`ztai`: the operator CLI.

    ztai preview --stack NAME [--json] [--export PATH] [--policy-config PATH]
    ztai policy analyze --file PATH [--json] [--config PATH]
    ztai weights encrypt|decrypt ...      (ztai/weights_cmd.py)
    ztai tokenize|detokenize ...          (ztai/tokenize_cmd.py)
    ztai truststore build|check|issue-test-client ...  (ztai/truststore_cmd.py)

Exit status: 0 success; 1 refused on security grounds (a mandatory policy is violated, or an
encrypted file does not authenticate); 2 usage, stack-config, policy-config or input-file error;
3 the program or the policy pack failed (a bug, with details).
"""

from __future__ import annotations

import argparse
import json
import runpy
import sys
import traceback
from pathlib import Path
from typing import Any

from ztai import config_cmd, tokenize_cmd, truststore_cmd, weights_cmd
from ztai.errors import EXIT_FAILURE, EXIT_OK, EXIT_USAGE, EXIT_VIOLATION, UsageError

DEFAULT_PACK = Path("policy_packs/zero_trust")
# The repository this CLI ships in: the default pack is found from anywhere.
REPOSITORY = Path(__file__).resolve().parent.parent


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="ztai", description="zero-trust-ai operator CLI")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    preview = commands.add_parser(
        "preview", help="offline preview of a stack with its policy check",
        description="Run __main__.py for stacks/Pulumi.NAME.yaml under Pulumi's mock monitor, "
                    "then the policy pack through its gRPC analyzer.")
    preview.add_argument("--stack", required=True, help="stack name (stacks/Pulumi.NAME.yaml)")
    preview.add_argument("--json", action="store_true", help="machine-readable report on stdout")
    preview.add_argument("--export", type=Path, metavar="PATH",
                         help="also write the recorded resources as a `pulumi stack export` file")
    preview.add_argument("--unknowns", action="store_true",
                         help="leave ids and computed outputs unknown, as a first real `pulumi "
                              "preview` does, to check the policies under those conditions")
    preview.add_argument("--policy-config", type=Path, metavar="PATH",
                         help="policy configuration JSON (as for --policy-pack-config)")
    preview.add_argument("--project-dir", type=Path, default=Path("."), metavar="DIR",
                         help="directory holding Pulumi.yaml (default: current directory)")
    preview.add_argument("--policy-pack", type=Path, metavar="DIR",
                         help=f"policy pack directory (default: <project-dir>/{DEFAULT_PACK})")

    policy = commands.add_parser("policy", help="policy pack commands")
    policy_commands = policy.add_subparsers(dest="policy_command", required=True, metavar="COMMAND")
    analyze = policy_commands.add_parser(
        "analyze", help="run the policy pack over a `pulumi stack export` file",
        description="The offline counterpart of `pulumi policy analyze`: every violating resource "
                    "is named by its URN.")
    analyze.add_argument("--file", type=Path, required=True, metavar="PATH",
                         help="a `pulumi stack export` document (deployment version 3)")
    analyze.add_argument("--json", action="store_true", help="machine-readable report on stdout")
    analyze.add_argument("--config", type=Path, metavar="PATH", help="policy configuration JSON")
    analyze.add_argument("--policy-pack", type=Path, default=REPOSITORY / DEFAULT_PACK, metavar="DIR",
                         help=f"policy pack directory (default: this repository's {DEFAULT_PACK})")

    # Runtime commands: each module adds its parsers and sets `handler` (args -> exit status).
    for module in (weights_cmd, tokenize_cmd, truststore_cmd, config_cmd):
        module.register(commands)
    return parser


def _policy_config(path: Path | None) -> dict[str, Any]:
    from ztai.policy.config import PolicyConfigError, load_policy_config
    if path is None:
        return {}
    try:
        return load_policy_config(path)
    except PolicyConfigError as error:
        raise UsageError(str(error)) from None


def _pack_dir(path: Path) -> Path:
    if not (path / "PulumiPolicy.yaml").is_file():
        raise UsageError(f"{path} is not a policy pack (no PulumiPolicy.yaml); pass --policy-pack DIR")
    return path


def _finish(result: Any, text: str, document: str, as_json: bool) -> int:
    sys.stdout.write(document if as_json else text)
    return EXIT_VIOLATION if result.mandatory_violations else EXIT_OK


def _preview(args: argparse.Namespace) -> int:
    from ztai.stackfile import StackFileError, load_stack, shared_target_warnings
    try:
        stack_file = load_stack(args.project_dir, args.stack)
    except StackFileError as error:
        raise UsageError(str(error)) from None
    user_config = _policy_config(args.policy_config)
    pack_dir = _pack_dir(args.policy_pack or args.project_dir / DEFAULT_PACK)

    # Heavy imports only once the input is known to be usable: usage errors answer instantly.
    import pulumi

    from ztai.export import to_export
    from ztai.policy.analyzer import AnalysisSession, AnalyzedResource, PolicyPackProcess, pack_environment
    from ztai.policy.config import PolicyConfigError
    from ztai.preview.recorder import RecordedResource, record
    from ztai.report import ReportResource, render_json, render_text

    for warning in [*stack_file.warnings, *shared_target_warnings(stack_file)]:
        print(f"warning: {warning}", file=sys.stderr)
    project_dir = args.project_dir.resolve()
    program_path = project_dir / "__main__.py"
    environment = pack_environment(stack_file.project, stack_file.stack, stack_file.config, True)

    def analyzed(r: RecordedResource) -> AnalyzedResource:
        # Analyze sees the inputs, as in a preview; AnalyzeStack the state the mocks returned,
        # and the root stack's outputs (the exports), as the engine passes them.
        return AnalyzedResource(
            urn=r.urn, type=r.type, name=r.name, properties=r.inputs,
            stack_properties=r.outputs if r.custom or r.type == "pulumi:pulumi:Stack" else None,
            parent=r.parent,
            dependencies=r.dependencies, property_dependencies=r.property_dependencies,
            protect=r.protect, ignore_changes=r.ignore_changes, custom=r.custom)

    # The pack boots and is configured on the other core while the program runs, and each
    # resource is analysed as it is registered, as the engine does.
    with PolicyPackProcess(pack_dir, env=environment) as pack:
        session = AnalysisSession(pack, user_config=user_config, project=stack_file.project,
                                  stack=stack_file.stack, stack_config=stack_file.config)

        def program() -> None:
            sys.path.insert(0, str(project_dir))
            runpy.run_path(str(program_path), run_name="__main__")

        try:
            recorded = record(program, project=stack_file.project, stack=stack_file.stack,
                              config=stack_file.config, region=stack_file.region or "us-east-1",
                              on_register=lambda resource: session.submit(analyzed(resource)),
                              unknowns=args.unknowns)
        except pulumi.RunError as error:
            # RunError is how the program reports a user error (e.g. StackConfigError).
            raise UsageError(str(error)) from None
        if recorded.errors:
            print("error: the program logged errors:\n" + "\n".join(recorded.errors), file=sys.stderr)
            return EXIT_FAILURE
        for warning in recorded.warnings:  # as `pulumi preview` shows them, beside the report
            print(f"warning: {warning}", file=sys.stderr)
        session.submit(analyzed(recorded.resources[0]))  # the root stack, described after the run
        try:
            result = session.finish([analyzed(r) for r in recorded.resources])
        except PolicyConfigError as error:
            raise UsageError(f"policy config: {error}") from None

    if args.export:
        document = to_export(recorded, _pulumi_version())
        try:
            args.export.write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")
        except OSError as error:
            raise UsageError(f"cannot write {args.export}: {error.strerror}") from None
        print(f"wrote {len(document['deployment']['resources'])} resources to {args.export}",
              file=sys.stderr)

    resources = [ReportResource(urn=r.urn, type=r.type, name=r.name, parent=r.parent,
                                custom=r.custom, protect=r.protect, inputs=r.inputs)
                 for r in recorded.resources]
    text = render_text(
        title=f"Previewing update ({stack_file.stack}) offline, under Pulumi's mock monitor"
              f"{' with unknown ids and outputs' if args.unknowns else ''}:",
        resources=resources, outputs=recorded.stack_outputs, result=result,
        pack_label=f"local: {pack_dir}", plan="create")
    document_text = render_json(mode="preview", project=stack_file.project, stack=stack_file.stack,
                                resources=resources, outputs=recorded.stack_outputs, result=result)
    return _finish(result, text, document_text, args.json)


def _analyze(args: argparse.Namespace) -> int:
    from ztai.export import ExportFileError, analyzed_resources, load_export
    try:
        stack, project, analyzed = analyzed_resources(load_export(args.file))
    except ExportFileError as error:
        raise UsageError(str(error)) from None
    user_config = _policy_config(args.config)
    pack_dir = _pack_dir(args.policy_pack)

    from ztai.policy.analyzer import PolicyPackProcess, analyze, pack_environment
    from ztai.policy.config import PolicyConfigError
    from ztai.report import ReportResource, render_json, render_text

    with PolicyPackProcess(pack_dir, env=pack_environment(project, stack, {}, False)) as pack:
        try:
            result = analyze(pack, analyzed, user_config=user_config, project=project, stack=stack,
                             dry_run=False)
        except PolicyConfigError as error:
            raise UsageError(f"policy config: {error}") from None
    resources = [ReportResource(urn=r.urn, type=r.type, name=r.name, parent=r.parent,
                                custom=r.custom, protect=r.protect, inputs=dict(r.properties))
                 for r in analyzed]
    text = render_text(title=f"Policy analysis of {args.file} (stack {stack or '?'}):",
                       resources=resources, outputs=None, result=result,
                       pack_label=f"local: {pack_dir}", plan="analyse")
    document = render_json(mode="analyze", project=project, stack=stack, resources=resources,
                           outputs=None, result=result)
    return _finish(result, text, document, args.json)


def _pulumi_version() -> str:
    from importlib.metadata import version
    return version("pulumi")


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    from ztai.policy.analyzer import PolicyPackError
    try:
        if args.command == "preview":
            return _preview(args)
        if args.command == "policy":
            return _analyze(args)
        status: int = args.handler(args)
        return status
    except UsageError as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_USAGE
    except PolicyPackError as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_FAILURE
    except Exception:  # noqa: BLE001 - a bug in the program or the CLI: show everything
        traceback.print_exc()
        return EXIT_FAILURE
