"""``python -m ops <command>``: one entry point for the operator commands.

Each command is a module of this package with ``add_arguments(parser)`` and ``run(args) -> int`` (the exit status).
Modules are imported only when their command runs, so ``--help`` stays fast. A command raises
:class:`ops.aws.OperatorError` for what the operator can fix (exit status 2) and lets AWS's errors through (exit
status 1): both are printed here, as one line naming the command.
"""

from __future__ import annotations

import argparse
import importlib
import sys

# command -> (module, one-line description); keep sorted by name.
COMMANDS: dict[str, tuple[str, str]] = {
    "backfill": ("ops.backfill", "classify what is already in the bucket: enqueue every upload without a result"),
    "bootstrap": ("ops.deploy", "once per account and region: cdk bootstrap, with prerequisites checked"),
    "cost": ("ops.cost", "monthly always-on cost and cost per million images of the app for given settings"),
    "deploy": ("ops.deploy", "cdk deploy --all with what it needs set; writes the outputs file, prints next steps"),
    "destroy": ("ops.deploy", "cdk destroy --all after saying what is kept, and asking"),
    "replay": ("ops.replay", "move the dead-letter queue's messages back to the upload queue"),
}


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    parser = argparse.ArgumentParser(prog="python -m ops", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", metavar="command", required=True)
    for name, (module_name, description) in COMMANDS.items():
        sub = commands.add_parser(name, help=description, description=description)
        # Only the chosen command's module is imported (it may need boto3, the CDK app...).
        if argv and argv[0] == name:
            importlib.import_module(module_name).add_arguments(sub)
    args = parser.parse_args(argv)
    from .aws import OperatorError

    try:
        return importlib.import_module(COMMANDS[args.command][0]).run(args)
    except OperatorError as error:
        print(f"{args.command}: {error}", file=sys.stderr)
        return 2
    except Exception as error:
        if not _is_aws_error(error):
            raise
        print(f"{args.command}: {error}", file=sys.stderr)
        return 1


def _is_aws_error(error: Exception) -> bool:
    """An error of an AWS call (botocore's), without importing botocore for commands that never load it."""
    botocore = sys.modules.get("botocore.exceptions")
    return botocore is not None and isinstance(error, (botocore.BotoCoreError, botocore.ClientError))


if __name__ == "__main__":
    sys.exit(main())
