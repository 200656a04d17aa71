"""`make bench`: every benchmark table, each against its baseline (TensorFlow/Keras, or the decoding as it was) in the same run."""

import argparse
import importlib
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

from .core_bench import print_table  # noqa: E402

SUITES = [
    ("benchmarks.core_bench", "Inference core: LiteRT vs TensorFlow/Keras on the same model (median of repeated runs)"),
    ("benchmarks.lambda_bench", "Serverless handler: LiteRT vs TensorFlow/Keras handler"),
    ("benchmarks.web_bench", "Web target under load: gunicorn + LiteRT vs the same app on TensorFlow/Keras"),
    ("benchmarks.web_hardening_bench", "Web target under slow clients and worst-case uploads: as shipped vs the previous settings"),
    ("benchmarks.costly_bench", "Costly inputs: decoding before and after bounded decoding, each in a fresh process"),
    ("benchmarks.demo_drain_bench", "Local system (make demo): draining a backlog of uploads through the queue"),
]


def _suite_name(module_name: str) -> str:
    return module_name.rsplit(".", 1)[-1].removesuffix("_bench")


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__)
    known = [_suite_name(name) for name, _ in SUITES]
    # No argparse choices: Python 3.11 checks an empty nargs="*" list against them and refuses it.
    parser.add_argument("suites", nargs="*", metavar="SUITE", help=f"suites to run: {', '.join(known)} (default: all)")
    names = parser.parse_args(argv).suites
    if unknown := sorted(set(names) - set(known)):
        parser.error(f"unknown suite {', '.join(unknown)}; choose from {', '.join(known)}")
    for module_name, title in SUITES:
        if names and _suite_name(module_name) not in names:
            continue
        module = importlib.import_module(module_name)
        print(f"running {module_name} ...", file=sys.stderr, flush=True)
        rows = module.run()
        if hasattr(module, "markdown"):  # suites with several tables print their own
            print(f"\n## {title}\n\n{module.markdown(rows)}")
            for line in getattr(module, "verdicts", lambda _: [])(rows):
                print(line)
        else:
            print_table(title, rows)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
