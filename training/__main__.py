import sys

if sys.argv[1:2] == ["promote"]:
    from .promote import main

    sys.exit(main(sys.argv[2:]))

from .options import parse_arguments

parse_arguments(sys.argv[1:])  # --help and usage errors answer before numpy, the core or TensorFlow load

from .cli import main  # noqa: E402

sys.exit(main())
