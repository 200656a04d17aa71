"""Capabilities: the boxes of the architecture diagram, out of which the stacks are composed.

A capability (the upload store, the classifier, the web servers...) declares the resources of one box, and the
monitored ones offer their alarms and dashboard section (``stacks.observability``). It adds its resources to the
stack it is given, under the ids they have always had, rather than nesting them in a construct of its own: the CDK
writes a resource's construct path into more than its logical ID (``Name`` tags, which for the launch template would
roll every web instance; the ids of security-group rules, whose replacement fails on the duplicate rule; the S3
trigger's permission), so a new nesting level would make CloudFormation replace resources on the next deploy.
"""

from __future__ import annotations

from constructs import Construct


class Capability:
    """Declares one capability's resources in ``scope`` (its stack), with the ids of the flat layout."""

    def __init__(self, scope: Construct) -> None:
        self.scope = scope
