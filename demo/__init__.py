"""`make demo`: the whole system on one machine, no AWS account.

A local S3 endpoint (moto in server mode) with the upload bucket, the real Lambda handler fed
real S3 events for every object created under ``uploads/``, and the web app under gunicorn.
"""
