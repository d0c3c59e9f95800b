"""The authorizer's one Powertools Logger: every module logs through it. Never log a token."""

from __future__ import annotations

from aws_lambda_powertools import Logger

logger = Logger(service="courier-authorizer")
