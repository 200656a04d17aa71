"""`make bench`: every benchmark table, each measured against its TensorFlow/Keras baseline in the same run."""

import importlib
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

from .core_bench import print_table  # noqa: E402

SUITES = [
    ("benchmarks.core_bench", "Inference core: LiteRT vs TensorFlow/Keras on the same model (median of repeated runs)"),
    ("benchmarks.lambda_bench", "Serverless handler: LiteRT vs TensorFlow/Keras handler"),
    ("benchmarks.web_bench", "Web target under load: gunicorn + LiteRT vs the same app on TensorFlow/Keras"),
    ("benchmarks.costly_bench", "Costly inputs: decoding before and after bounded decoding, each in a fresh process"),
]


def main(names: list[str]) -> int:
    for module_name, title in SUITES:
        if names and module_name.rsplit(".", 1)[-1].removesuffix("_bench") not in names:
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
