#!/usr/bin/env python3
"""Checks deploy/template.yaml for every combination of its choices (run by `make lint` with the
cfn-lint virtualenv's Python: scripts/install-tools.sh).

For each combination of Ingress x GoogleCredentials x BatchTrigger (x MetricsBackend):
1. cfn-lint on the template with the combination's values as the parameters' defaults (cfn-lint
   resolves Refs from defaults, so patterns of ARNs and URLs are checked with real values);
2. the template's Rules, evaluated here (cfn-lint does not evaluate them): a complete combination
   passes, and each required value left out is refused;
3. the Conditions, evaluated here, give the expected deployment: which Function URL and
   AuthType, AUTH_MODE and the push settings, how the Google credentials arrive, which triggers.

Exit code 1 with one line per failure.
"""

import copy
import itertools
import json
import sys
from pathlib import Path

from cfnlint.api import ManualArgs, lint
from cfnlint.decode import cfn_yaml

TEMPLATE = Path(__file__).resolve().parent.parent / "deploy" / "template.yaml"

COMPLETE = {
    "MetricProject": "metrics-proj",
    "DataProject": "data-proj",
    "PushAudience": "https://abcdefghij.lambda-url.eu-west-1.on.aws/",
    "PushServiceAccounts": "pubsub-push@metrics-proj.iam.gserviceaccount.com",
    "GcpServiceAccountKeySecretArn": "arn:aws:secretsmanager:eu-west-1:123456789012:secret:gcp-sa-key-AbCdEf",
    "WorkloadIdentityProvider": "projects/123456789/locations/global/workloadIdentityPools/aws-pool/providers/aws-lambda",
    "GoogleServiceAccount": "metrics-fn@metrics-proj.iam.gserviceaccount.com",
    "KinesisOnFailureArn": "arn:aws:sqs:eu-west-1:123456789012:pipeline-run-metrics-failed",
}

# what each choice needs, for the negative checks of the Rules
REQUIRED = {
    ("Ingress", "pubsub-push"): ["PushAudience", "PushServiceAccounts"],
    ("GoogleCredentials", "secret"): ["GcpServiceAccountKeySecretArn"],
    ("GoogleCredentials", "workload-identity"): ["WorkloadIdentityProvider", "GoogleServiceAccount"],
}


class Values:
    """Evaluates the intrinsic functions Rules and Conditions use, for one set of parameters."""

    def __init__(self, template, params):
        self.template = template
        self.params = params
        self.conditions = {}

    def ref(self, name):
        if name.startswith("AWS::"):
            return {"Ref": name}  # pseudo parameters (AWS::NoValue) stay as they are
        if name in self.params:
            return self.params[name]
        return self.template["Parameters"][name].get("Default")

    def eval(self, node):
        if isinstance(node, dict) and len(node) == 1:
            (fn, arg), = node.items()
            if fn == "Ref":
                return self.ref(arg)
            if fn == "Fn::Equals":
                return str(self.eval(arg[0])) == str(self.eval(arg[1]))
            if fn == "Fn::Not":
                return not self.eval(arg[0])
            if fn == "Fn::And":
                return all(self.eval(a) for a in arg)
            if fn == "Fn::Or":
                return any(self.eval(a) for a in arg)
            if fn == "Condition":
                return self.condition(arg)
            if fn == "Fn::If":
                return self.eval(arg[1] if self.condition(arg[0]) else arg[2])
        return node

    def condition(self, name):
        if name not in self.conditions:
            self.conditions[name] = self.eval(self.template["Conditions"][name])
        return self.conditions[name]

    def refused_by(self):
        """The AssertDescriptions of the Rules that refuse these parameters."""
        refused = []
        for rule in self.template.get("Rules", {}).values():
            if "RuleCondition" in rule and not self.eval(rule["RuleCondition"]):
                continue
            refused += [a["AssertDescription"] for a in rule["Assertions"] if not self.eval(a["Assert"])]
        return refused

    def resources(self):
        """Resource name -> properties, of the resources this deployment creates."""
        out = {}
        for name, res in self.template["Resources"].items():
            if "Condition" in res and not self.condition(res["Condition"]):
                continue
            out[name] = res.get("Properties", {})
        return out

    def environment(self):
        env = self.template["Resources"]["MetricsFunction"]["Properties"]["Environment"]["Variables"]
        out = {}
        for k, v in env.items():
            value = self.eval(v)
            if value != {"Ref": "AWS::NoValue"}:
                out[k] = value
        return out


def with_defaults(template, params):
    t = copy.deepcopy(template)
    for k, v in params.items():
        t["Parameters"][k]["Default"] = v
    return t


def check(template, params, failures):
    label = " ".join(f"{k}={params[k]}" for k in ("Ingress", "GoogleCredentials", "BatchTrigger", "MetricsBackend"))
    fail = lambda why: failures.append(f"{label}: {why}")  # noqa: E731

    # 1. cfn-lint with these values
    text = json.dumps(with_defaults(template, params))
    for m in lint(text, config=ManualArgs(regions=["us-east-1"])):
        fail(f"cfn-lint {m.rule.id}: {m.message} ({'/'.join(str(p) for p in m.path)})")

    v = Values(template, params)
    # 2. Rules: complete values pass; each required value left out is refused
    if refused := v.refused_by():
        fail(f"refused with every value given: {refused}")
    for (choice, value), needed in REQUIRED.items():
        if params[choice] != value:
            continue
        for missing in needed:
            if not Values(template, {**params, missing: ""}).refused_by():
                fail(f"deployable without {missing}")

    # 3. what the deployment is
    res, env = v.resources(), v.environment()
    url = res.get("MetricsFunctionUrl")
    ingress = params["Ingress"]
    if ingress == "none":
        if url is not None:
            fail("a Function URL without an ingress")
        if any(n.startswith(("PublicUrl", "IamUrl")) for n in res):
            fail("URL permissions without a URL")
    else:
        want = "NONE" if ingress == "pubsub-push" else "AWS_IAM"
        if url is None or v.eval(url["AuthType"]) != want:
            fail(f"Function URL AuthType is not {want}: {url}")
    if ingress == "pubsub-push":
        if env.get("AUTH_MODE") != "verify":
            fail(f"public URL without AUTH_MODE=verify: {env.get('AUTH_MODE')}")
        if env.get("PUSH_AUDIENCE") != params["PushAudience"] or env.get("PUSH_SERVICE_ACCOUNTS") != params["PushServiceAccounts"]:
            fail("PUSH_AUDIENCE / PUSH_SERVICE_ACCOUNTS not passed on")
        if {"PublicUrlInvokeUrlPermission", "PublicUrlInvokeFunctionPermission"} - set(res):
            fail("the public URL lacks its resource-based permissions")
    else:
        if env.get("AUTH_MODE") != "trust-platform" or "PUSH_AUDIENCE" in env:
            fail(f"AUTH_MODE {env.get('AUTH_MODE')} / PUSH_AUDIENCE without a public URL")
        if any(n.startswith("PublicUrl") for n in res):
            fail("public permissions without a public URL")
    if "GCP_SA_KEY_JSON" in env:
        fail("a Google key in a plain environment variable")
    if params["GoogleCredentials"] == "secret":
        if env.get("GCP_SA_KEY_SECRET_ARN") != params["GcpServiceAccountKeySecretArn"] or "GCP_EXTERNAL_ACCOUNT_JSON" in env:
            fail(f"secret: wrong credential variables {sorted(env)}")
    else:
        if "GCP_SA_KEY_SECRET_ARN" in env:
            fail("workload-identity with a secret ARN")
        sub = env.get("GCP_EXTERNAL_ACCOUNT_JSON", {}).get("Fn::Sub", "")
        text = sub.replace("${WorkloadIdentityProvider}", params["WorkloadIdentityProvider"]).replace(
            "${GoogleServiceAccount}", params["GoogleServiceAccount"]
        )
        try:
            cfg = json.loads(text)
        except ValueError as e:
            fail(f"GCP_EXTERNAL_ACCOUNT_JSON is not JSON: {e}")
        else:
            want = {
                "type": "external_account",
                "audience": "//iam.googleapis.com/" + params["WorkloadIdentityProvider"],
                "subject_token_type": "urn:ietf:params:aws:token-type:aws4_request",
                "token_url": "https://sts.googleapis.com/v1/token",
                "service_account_impersonation_url": "https://iamcredentials.googleapis.com/v1/projects/-/serviceAccounts/"
                + params["GoogleServiceAccount"] + ":generateAccessToken",
            }
            for k, w in want.items():
                if cfg.get(k) != w:
                    fail(f"external_account {k} = {cfg.get(k)!r}, not {w!r}")
            if cfg.get("credential_source", {}).get("environment_id") != "aws1":
                fail("external_account credential_source is not aws1")
    triggers = {n for n in res if n.endswith("Trigger")}
    want_triggers = {"none": set(), "kinesis": {"KinesisTrigger"}, "sqs": {"SqsTrigger"}}[params["BatchTrigger"]]
    if triggers != want_triggers:
        fail(f"triggers {sorted(triggers)}, not {sorted(want_triggers)}")


def main():
    template = cfn_yaml.load(str(TEMPLATE))
    # cfn-lint on the template as written (conditions in every scenario, line numbers)
    failures = [f"cfn-lint {m.rule.id}: {m.message} (line {m.linenumber})" for m in lint(TEMPLATE.read_text(), config=ManualArgs(regions=["us-east-1"]))]
    combos = list(itertools.product(["pubsub-push", "iam", "none"], ["secret", "workload-identity"], ["none", "kinesis", "sqs"]))
    for i, (ingress, creds, batch) in enumerate(combos):
        params = dict(COMPLETE, Ingress=ingress, GoogleCredentials=creds, BatchTrigger=batch,
                      MetricsBackend="otlp" if i % 2 else "gcm")
        if params["MetricsBackend"] == "otlp":
            params["OtlpEndpoint"] = "https://otel-collector.example.com:4318"
        check(template, params, failures)
    for f in failures:
        print(f"deploy/template.yaml: {f}")
    print(f"deploy/template.yaml: {len(combos)} combinations checked, {len(failures)} failures")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
