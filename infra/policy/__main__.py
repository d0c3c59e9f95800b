"""The policy pack's entry point. PolicyPack() serves the engine forever: tests import
courier_policies instead, never this file."""

from courier_policies import ALL_POLICIES
from pulumi_policy import PolicyPack

PolicyPack(name="courier-guard", policies=ALL_POLICIES)
