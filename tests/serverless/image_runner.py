"""Runs inside a folder laid out like the image's /var/task: ``python -I -S image_runner.py TASK_ROOT REPORT``.

``-I -S`` leaves only the standard library on sys.path; the task root is put first, as Lambda's bootstrap does.
So the handler can import only what the image would hold: a dependency missing from the image's requirement
file fails here. Reads one S3 event on stdin, invokes the handler (logs and EMF metrics go to stdout, as in
Lambda) and writes the response and where every module came from to REPORT.
"""

import json
import sys
import sysconfig


class LambdaContext:
    function_name = "firewatch-classify"
    function_version = "$LATEST"
    memory_limit_in_mb = 1024
    invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:firewatch-classify"
    aws_request_id = "00000000-0000-4000-8000-000000000001"

    @staticmethod
    def get_remaining_time_in_millis() -> int:
        return 30_000


def main() -> None:
    task_root, report_path = sys.argv[1], sys.argv[2]
    sys.path.insert(0, task_root)

    from lambda_image.handler import handler

    response = handler(json.loads(sys.stdin.read()), LambdaContext())

    stdlib = (sysconfig.get_paths()["stdlib"], sysconfig.get_paths()["platstdlib"])
    outside = sorted(
        name
        for name, module in list(sys.modules.items())
        if (path := getattr(module, "__file__", None))
        and path != __file__  # this runner, imported as __main__ (and __mp_main__ by multiprocessing)
        and not path.startswith((task_root, *stdlib))
    )
    with open(report_path, "w", encoding="utf-8") as report:
        json.dump({"response": response, "modules_outside_task_root": outside, "python": sys.version}, report)


if __name__ == "__main__":
    main()
