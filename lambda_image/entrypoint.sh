#!/bin/sh
# One image, two entry points.
#   one argument that is not a program (the default command, lambda_image.handler.handler): a Lambda handler name,
#     passed to the base image's entry point (the Lambda runtime, or its emulator when run outside Lambda);
#   anything else is a command to run, e.g. the web app: python -m web_app --host 0.0.0.0 --port 8080
set -eu
LAMBDA_ENTRYPOINT="${LAMBDA_ENTRYPOINT:-/lambda-entrypoint.sh}"

if [ "$#" -le 1 ] && ! command -v "${1:-}" >/dev/null 2>&1; then
    exec "$LAMBDA_ENTRYPOINT" "$@"
fi
exec "$@"
