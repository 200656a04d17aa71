"""Names and defaults the command line needs, kept apart from the model code so ``--help`` imports no Keras."""

BACKBONES = ("compact", "xception")
DEFAULT_SIZES = {"compact": 160, "xception": 224}
