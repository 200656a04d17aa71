"""`make bench`: figures against the TensorFlow/Keras baseline, measured in the same run."""
