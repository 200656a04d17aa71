"""Offline training job for the fire classifier (TensorFlow/Keras). Not imported by serving code."""
