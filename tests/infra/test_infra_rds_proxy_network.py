"""`courier:rdsProxy: true`: the proxy has its own security group, reachable from the Lambdas on 5432
and able to reach the database on 5432, and no other port or peer is opened anywhere.

Security groups made by pulumi-aws have no egress unless a rule adds it (the provider removes
AWS's default allow-all egress), so reachability is exactly the declared rules.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pytest
from infra_harness import Recorded, run_program, stack_file_config

from courier_infra import packaging

Rule = tuple[str, str, str, int, int, str]  # (direction, group, protocol, from, to, peer)


@pytest.fixture(scope="module")
def with_proxy(artifacts: Mapping[str, packaging.Artifact]) -> Recorded:
    return run_program("dev", {**stack_file_config("dev"), "courier:rdsProxy": "true"}, artifacts)


def security_group_rules(recorded: Recorded) -> set[Rule]:
    """Every rule as (direction, group name, protocol, ports, peer group name or CIDR)."""
    groups = {
        group.outputs.get("id", f"{group.name}-id"): group.name
        for group in recorded.of_type("aws:ec2/securityGroup:SecurityGroup")
    }
    for group in recorded.of_type("aws:ec2/securityGroup:SecurityGroup"):
        # Inline rules would bypass the separate rule resources asserted below.
        assert not group.inputs.get("ingress") and not group.inputs.get("egress"), group.name
    rules: set[Rule] = set()
    for direction in ("ingress", "egress"):
        kind = "Ingress" if direction == "ingress" else "Egress"
        for rule in recorded.of_type(f"aws:vpc/securityGroup{kind}Rule:SecurityGroup{kind}Rule"):
            inputs: dict[str, Any] = rule.inputs
            peer = inputs.get("referencedSecurityGroupId")
            rules.add(
                (
                    direction,
                    groups[inputs["securityGroupId"]],
                    inputs["ipProtocol"],
                    int(inputs["fromPort"]),
                    int(inputs["toPort"]),
                    groups[peer] if peer else inputs.get("cidrIpv4") or inputs.get("cidrIpv6"),
                )
            )
    return rules


def can_reach(rules: set[Rule], source: str, target: str, port: int) -> bool:
    """Source may send to target on `port` (its egress) and target admits source (its ingress)."""

    def allows(direction: str, group: str, peer: str) -> bool:
        return any(
            d == direction and g == group and p == "tcp" and lo <= port <= hi and peer_ == peer
            for d, g, p, lo, hi, peer_ in rules
        )

    return allows("egress", source, target) and allows("ingress", target, source)


LAMBDA, DATABASE, PROXY = "network-lambda", "network-database", "network-proxy"
WITHOUT_PROXY = {
    ("egress", LAMBDA, "tcp", 443, 443, "0.0.0.0/0"),
    ("egress", LAMBDA, "tcp", 5432, 5432, DATABASE),
    ("ingress", DATABASE, "tcp", 5432, 5432, LAMBDA),
}


def test_the_proxy_sits_in_its_own_group(with_proxy: Recorded) -> None:
    proxy = with_proxy.one("aws:rds/proxy:Proxy", "database")
    proxy_group = with_proxy.one("aws:ec2/securityGroup:SecurityGroup", PROXY)
    assert proxy.inputs["vpcSecurityGroupIds"] == [proxy_group.outputs.get("id", f"{PROXY}-id")]


def test_lambdas_reach_the_proxy_and_the_proxy_reaches_the_database_on_5432(with_proxy: Recorded) -> None:
    rules = security_group_rules(with_proxy)
    assert can_reach(rules, LAMBDA, PROXY, 5432)
    assert can_reach(rules, PROXY, DATABASE, 5432)
    assert not can_reach(rules, PROXY, PROXY, 5432)  # nothing needs the proxy to talk to itself


def test_the_proxy_opens_exactly_four_postgres_rules_and_nothing_else(with_proxy: Recorded) -> None:
    assert security_group_rules(with_proxy) == WITHOUT_PROXY | {
        ("egress", LAMBDA, "tcp", 5432, 5432, PROXY),
        ("ingress", PROXY, "tcp", 5432, 5432, LAMBDA),
        ("egress", PROXY, "tcp", 5432, 5432, DATABASE),
        ("ingress", DATABASE, "tcp", 5432, 5432, PROXY),
    }


def test_without_the_proxy_there_is_no_proxy_group_or_rule(dev: Recorded) -> None:
    assert security_group_rules(dev) == WITHOUT_PROXY
    assert not [g for g in dev.of_type("aws:ec2/securityGroup:SecurityGroup") if g.name == PROXY]
