"""Firewatch's serverless target: an S3 upload event -> the inference core -> a result object, metrics, a fire alert.

The entry point is ``lambda_image.handler.handler``; ``lambda_image/Dockerfile`` builds the one container image
that runs it (and, with ``python`` as its entry point, the web app).
"""
