"""Benchmark: the offline preview with policy analysis, against the cost of importing pulumi-aws.

Run with `./run bench`. Everything is measured in this run, as whole processes (wall clock,
median of several repetitions, interleaved so drift hits every variant alike):

- baseline: a fresh interpreter that imports pulumi and pulumi_aws, touches every resource class
  and data source the prod preview uses (read from the preview's own report), and exits;
- the prod preview: `python -m ztai preview --stack prod --json`;
- scaling: the same pipeline over a program declaring 1, 4 and 16 SegmentedNetworks (116 resources
  each), giving the cost per resource and how linear it is.

Reported as ratios to the baseline; nothing here asserts a time.
"""

from __future__ import annotations

import argparse
import json
import keyword
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results"

SYNTHETIC_PROGRAM = '''\
import sys
sys.path.insert(0, {root!r})
from components.network import Segment, SegmentedNetwork, SegmentedNetworkArgs

for k in range({networks}):
    SegmentedNetwork(f"net{{k}}", SegmentedNetworkArgs(
        segments=[Segment(name, f"10.{{4 * k + i}}.0.0/16", egress=name == "management")
                  for i, name in enumerate(("data", "training", "inference", "management"))],
        environment=f"bench{{k}}", owner="benchmark", region="eu-west-1", az_count=2))
'''


def wall(command: list[str], cwd: Path = ROOT, allowed: tuple[int, ...] = (0,)) -> tuple[float, str]:
    start = time.perf_counter()
    run = subprocess.run(command, cwd=cwd, capture_output=True, text=True, check=False)
    elapsed = time.perf_counter() - start
    # Exit 1 would also be Python's status for a crashed script: accept only what is expected.
    if run.returncode not in allowed:
        raise SystemExit(f"{' '.join(command)} failed ({run.returncode}):\n{run.stderr}")
    return elapsed, run.stdout


def import_script(report: dict[str, Any]) -> str:
    """Python that imports exactly the pulumi-aws classes the previewed stack registers."""
    touches = set()
    for resource in report["resources"]:
        package, _, rest = resource["type"].partition(":")
        if package != "aws":
            continue
        module_path, _, class_name = rest.rpartition(":")
        module = module_path.split("/")[0]
        # Python keywords get a trailing underscore in the SDK (aws.lambda_).
        touches.add(f"aws.{module}{'_' if keyword.iskeyword(module) else ''}.{class_name}")
    touches |= {"aws.get_caller_identity_output", "aws.get_availability_zones_output"}
    return ("import os\nimport pulumi\nimport pulumi_aws as aws\n"
            f"_ = [{', '.join(sorted(touches))}]\n"
            # As the CLI does: no interpreter teardown in either measurement.
            "os._exit(0)\n")


def synthetic_project(directory: Path, networks: int) -> Path:
    project = directory / f"networks-{networks}"
    (project / "stacks").mkdir(parents=True)
    shutil.copy(ROOT / "Pulumi.yaml", project / "Pulumi.yaml")
    shutil.copy(ROOT / "stacks" / "Pulumi.dev.yaml", project / "stacks" / "Pulumi.bench.yaml")
    (project / "__main__.py").write_text(SYNTHETIC_PROGRAM.format(root=str(ROOT), networks=networks))
    return project


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5, help="repetitions per measurement")
    parser.add_argument("--scales", type=int, nargs="+", default=[1, 4, 16],
                        help="numbers of SegmentedNetworks for the scaling series")
    args = parser.parse_args()
    python = sys.executable
    preview = [python, "-m", "ztai", "preview", "--json"]

    _, prod_out = wall([*preview, "--stack", "prod"])
    prod_report = json.loads(prod_out)
    with tempfile.TemporaryDirectory() as temp:
        baseline_script = Path(temp) / "baseline.py"
        baseline_script.write_text(import_script(prod_report))
        projects = {n: synthetic_project(Path(temp), n) for n in args.scales}
        pack = str(ROOT / "policy_packs" / "zero_trust")
        commands: dict[str, list[str]] = {
            "import": [python, str(baseline_script)],
            "prod": [*preview, "--stack", "prod"],
            **{f"x{n}": [*preview, "--stack", "bench", "--project-dir", str(projects[n]),
                         "--policy-pack", pack] for n in args.scales},
        }
        samples: dict[str, list[float]] = {name: [] for name in commands}
        resources: dict[str, int] = {}
        for _ in range(args.repeat):
            for name, command in commands.items():
                elapsed, out = wall(command, allowed=(0,) if name in ("import", "prod") else (0, 1))
                samples[name].append(elapsed)
                if name != "import" and name not in resources:
                    resources[name] = json.loads(out)["summary"]["resources"]

    median = {name: statistics.median(values) for name, values in samples.items()}
    base = median["import"]
    xs = [resources[f"x{n}"] for n in args.scales]
    ys = [median[f"x{n}"] for n in args.scales]
    slope, intercept = statistics.linear_regression(xs, ys)
    fitted = [intercept + slope * x for x in xs]
    worst_fit = max(abs(y - f) / y for y, f in zip(ys, fitted, strict=True))

    print(f"machine: {os.cpu_count()} cores, Python {sys.version.split()[0]}, "
          f"median of {args.repeat} runs each\n")
    print("| measurement | resources | wall time (s) | ratio to bare import |")
    print("|---|---:|---:|---:|")
    print(f"| bare import of the pulumi-aws classes the prod stack uses | - | {base:.2f} | 1.00 |")
    print(f"| `ztai preview --stack prod` (program + policy pack) | {resources['prod']} | "
          f"{median['prod']:.2f} | {median['prod'] / base:.2f} |")
    for n, x, y in zip(args.scales, xs, ys, strict=True):
        print(f"| {n}× SegmentedNetwork | {x} | {y:.2f} | {y / base:.2f} |")
    print(f"\nper resource: {slope * 1000:.2f} ms (least squares over the scaling series); "
          f"fixed cost {intercept:.2f} s = {intercept / base:.2f}× the bare import; "
          f"largest deviation from the linear fit {worst_fit:.1%}")

    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "preview_scaling.json").write_text(json.dumps({
        "samples": samples, "median": median, "resources": resources,
        "per_resource_ms": slope * 1000, "fixed_s": intercept, "worst_fit": worst_fit,
    }, indent=2))


if __name__ == "__main__":
    main()
