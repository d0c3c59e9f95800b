"""The IAM documents for the whole model x Region matrix pass two offline IAM linters.

- parliament (duo-labs): no finding above LOW (one documented false positive waived, see
  catalog_helpers.parliament_findings).
- cfn-lint's IAM rules (policy schema, ARN shape, actions known to the service definitions): no
  finding at all, with one document per (model, scope) placed in an AWS::IAM::ManagedPolicy template.

Each suite also lints a deliberately wrong policy, so a linter that silently checks nothing fails.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from catalog_helpers import ACCOUNT, TODAY, above_low, parliament_findings, unaccepted

from courier_shared.catalog import (
    CatalogError,
    catalog_models,
    invoke_policy,
    load_catalog,
    policy_document,
    resolve,
)


def _matrix_documents() -> dict[str, dict[str, Any]]:
    """One policy document per (model, Region, scope) that resolves, keyed by a readable name."""
    documents = {}
    for model in catalog_models():
        for region in load_catalog().bedrock_regions():
            for scope in model.scopes_from(region):
                try:
                    resolved = resolve(model.key, region, scope, allow_legacy=True, today=TODAY)
                except CatalogError:
                    continue  # end-of-life models: refused, no policy to lint
                documents[f"{resolved.model_id} from {region}"] = policy_document(
                    invoke_policy(resolved, region, ACCOUNT)
                )
    return documents


DOCUMENTS = _matrix_documents()

BAD_STATEMENT = {
    "Sid": "TooBroad",
    "Effect": "Allow",
    "Action": ["bedrock:Converse", "bedrock:*", "aws-marketplace:Subscribe"],
    "Resource": "*",
}


def test_the_matrix_has_every_kind_of_policy():
    assert len(DOCUMENTS) > 350
    kinds = {len(document["Statement"]) for document in DOCUMENTS.values()}
    assert kinds == {1, 2, 3}  # bare, geographic, global
    assert any(name.startswith("us-gov.") for name in DOCUMENTS)


def test_parliament_finds_nothing_above_low_in_any_matrix_policy():
    statements = {
        json.dumps(statement, sort_keys=True)
        for document in DOCUMENTS.values()
        for statement in document["Statement"]
    }
    problems = {}
    for text in statements:
        findings = unaccepted(parliament_findings(json.loads(text)))
        if findings:
            problems[text] = findings
    assert problems == {}


def test_parliament_still_reports_wrong_policies():
    issues = {issue for issue, _, _ in unaccepted(parliament_findings(BAD_STATEMENT))}
    assert "UNKNOWN_ACTION" in issues  # there is no bedrock:Converse action
    star = {"Effect": "Allow", "Action": ["bedrock:InvokeModel"], "Resource": "*"}
    assert "RESOURCE_STAR" in {issue for issue, _, _ in unaccepted(parliament_findings(star))}
    # AWS's CDK construct puts the account into foundation-model ARNs (notes §3.2): above LOW.
    with_account = {
        "Effect": "Allow",
        "Action": ["bedrock:InvokeModel"],
        "Resource": [f"arn:aws:bedrock:us-east-1:{ACCOUNT}:foundation-model/amazon.nova-pro-v1:0"],
    }
    assert [issue for issue, _, _ in above_low(parliament_findings(with_account))] == ["RESOURCE_MISMATCH"]


def _template(documents: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "AWSTemplateFormatVersion": "2010-09-09",
        "Resources": {
            f"Policy{index}": {"Type": "AWS::IAM::ManagedPolicy", "Properties": {"PolicyDocument": document}}
            for index, document in enumerate(documents)
        },
    }


def _cfn_lint(paths: list[Path]) -> subprocess.CompletedProcess[str]:
    cfn_lint = Path(sys.executable).parent / "cfn-lint"
    return subprocess.run(
        [str(cfn_lint), "--format", "parseable", "--include-checks", "I", "--", *map(str, paths)],
        capture_output=True,
        text=True,
        timeout=120,
    )


def _one_document_per_model_and_scope() -> list[dict[str, Any]]:
    """cfn-lint is slow per resource, so it sees each (model, scope) once; parliament sees them all."""
    seen: dict[tuple[str, str], dict[str, Any]] = {}
    for name, document in DOCUMENTS.items():
        model_id = name.split(" from ")[0]
        seen.setdefault((model_id, str(len(document["Statement"]))), document)
    return list(seen.values())


@pytest.mark.timeout(120)
def test_cfn_lint_finds_nothing_in_the_policies_of_each_model_and_scope(tmp_path):
    documents = _one_document_per_model_and_scope()
    assert len(documents) > 50
    matrix = tmp_path / "matrix.json"
    matrix.write_text(json.dumps(_template(documents)))
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(_template([policy_document([BAD_STATEMENT])])))

    result = _cfn_lint([matrix, bad])

    findings = [line for line in result.stdout.splitlines() if line.strip()]
    assert findings, f"cfn-lint reported nothing, not even for the bad policy: {result.stderr}"
    assert all(line.startswith(str(bad)) for line in findings), "\n".join(findings[:20])
    assert any("converse" in line for line in findings)  # the bad policy is caught
