import sys

if sys.argv[1:2] == ["promote"]:
    from .promote import main

    sys.exit(main(sys.argv[2:]))

from .cli import main

sys.exit(main())
