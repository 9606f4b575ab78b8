"""CloudWatch alarms delivered by an SNS HTTP(S) subscription → one event, or the SNS handshake."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any

from engine.normalize.reading import (
    ROOT,
    as_object,
    compact_json,
    fail,
    header,
    join,
    opt_list,
    opt_object,
    opt_text,
    opt_time,
    parse_json,
    req_text,
    scalar_text,
)
from engine.normalize.result import (
    Normalized,
    delivery_id,
    derived_id,
    event,
    events,
    nothing,
    utc,
)
from engine.schema import identity_hash

SOURCE = "cloudwatch"

# CloudWatch alarms carry no severity. ALARM is high (a rule can raise or lower it per alarm or
# namespace); INSUFFICIENT_DATA fires at low; OK resolves, and the engine keeps the alert's
# severity, so it carries ALARM's.
STATES: dict[str, tuple[str, str]] = {
    "ALARM": ("firing", "high"),
    "INSUFFICIENT_DATA": ("firing", "low"),
    "OK": ("resolved", "high"),
}

# Dimensions that name the resource an alarm watches, best first: the event's host.
HOST_DIMENSIONS = (
    "InstanceId",
    "DBInstanceIdentifier",
    "DBClusterIdentifier",
    "CacheClusterId",
    "LoadBalancer",
    "LoadBalancerName",
    "AutoScalingGroupName",
    "FunctionName",
    "VolumeId",
    "NatGatewayId",
    "ClusterName",
    "DomainName",
    "QueueName",
    "TableName",
    "BucketName",
)

SignatureVerifier = Callable[[Mapping[str, Any], bytes], bool]

verify_signature: SignatureVerifier | None = None
"""Off by default. When set (once, at startup), every SNS message is passed to it with the
bytes SNS signed (`string_to_sign`); it must fetch and cache the certificate at
`SigningCertURL` (an https URL on an amazonaws.com host) and check `Signature`
(SignatureVersion 1: SHA1withRSA, 2: SHA256withRSA). False refuses the message. Normalizers
do no I/O, so no verifier ships here."""

_SIGNED_KEYS = {
    "Notification": ("Message", "MessageId", "Subject", "Timestamp", "TopicArn", "Type"),
    "SubscriptionConfirmation": (
        "Message",
        "MessageId",
        "SubscribeURL",
        "Timestamp",
        "Token",
        "TopicArn",
        "Type",
    ),
}
_SIGNED_KEYS["UnsubscribeConfirmation"] = _SIGNED_KEYS["SubscriptionConfirmation"]
_SNS_URL = re.compile(r"https://sns\.[a-z0-9-]+\.amazonaws\.com(\.cn)?/[^\s]*")
_DATAPOINT = re.compile(r"datapoints?\s*\[\s*([-+]?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?)")


def normalize(
    payload: Any, *, received_at: datetime, headers: Mapping[str, str] | None = None
) -> Normalized:
    """Branch on the SNS `Type` (or the x-amz-sns-message-type header).

    SubscriptionConfirmation gives no event but `confirm_url`; UnsubscribeConfirmation gives
    a note; Notification decodes `Message` (JSON in a string) into one event. A body that is
    an alarm itself (no `Type`, an `AlarmName`) is read as one, for forwarders that unwrap SNS.
    """
    body = as_object(payload, ROOT)
    at = utc(received_at)
    kind = opt_text(body, "Type", ROOT) or header(headers, "x-amz-sns-message-type")
    if kind is None and ("AlarmName" in body or "AlarmArn" in body):
        return events([_alarm(body, ROOT, body, at, None)], received_at=at)
    if kind is None:
        raise fail("'Type' is required (an SNS message)", "Type")
    if kind not in _SIGNED_KEYS:
        known = ", ".join(_SIGNED_KEYS)
        raise fail(f"'Type' must be one of {known}, got {kind!r:.40}", "Type")
    if verify_signature is not None and not verify_signature(body, string_to_sign(body, kind)):
        raise fail("the SNS signature does not verify", "Signature")
    topic = opt_text(body, "TopicArn", ROOT) or "?"
    if kind == "SubscriptionConfirmation":
        url = req_text(body, "SubscribeURL", ROOT)
        # The API layer fetches this URL: never let a forged body point it elsewhere.
        if not _SNS_URL.fullmatch(url):
            raise fail("'SubscribeURL' must be an https URL on an SNS host", "SubscribeURL")
        return nothing(f"SNS subscription confirmation for {topic}", confirm_url=url)
    if kind == "UnsubscribeConfirmation":
        return nothing(f"SNS unsubscribe confirmation for {topic} ignored")
    message = as_object(parse_json(req_text(body, "Message", ROOT), "Message"), "Message")
    message_id = opt_text(body, "MessageId", ROOT)
    return events([_alarm(message, "Message", body, at, message_id)], received_at=at)


def string_to_sign(envelope: Mapping[str, Any], kind: str) -> bytes:
    """The bytes SNS signs: `Key\\nValue\\n` for its fixed keys, in order, where present."""
    lines = []
    for key in _SIGNED_KEYS.get(kind, ()):
        value = envelope.get(key)
        if value is not None:
            lines.append(f"{key}\n{scalar_text(value, key)}\n")
    return "".join(lines).encode()


def _alarm(
    alarm: Mapping[str, Any],
    path: str,
    envelope: Mapping[str, Any],
    at: datetime,
    message_id: str | None,
) -> dict[str, Any]:
    name = opt_text(alarm, "AlarmName", path) or ""
    arn = opt_text(alarm, "AlarmArn", path)
    account = opt_text(alarm, "AWSAccountId", path, numbers=True) or ""
    region = _region(arn) or _region(opt_text(envelope, "TopicArn", ROOT))
    if arn is None and not name:
        where = join(path, "AlarmArn")
        raise fail(f"'{where}' (or AlarmName) is required to identify the alarm", where)
    # Older deliveries have no AlarmArn: rebuild the identity it would have given.
    source_id = arn or f"arn:aws:cloudwatch:{region}:{account}:alarm:{name}"
    fingerprint = identity_hash(SOURCE, source_id)

    state = req_text(alarm, "NewStateValue", path)
    if state not in STATES:
        where = join(path, "NewStateValue")
        raise fail(f"'{where}' must be one of {', '.join(STATES)}, got {state!r:.40}", where)
    status, severity = STATES[state]
    changed = opt_text(alarm, "StateChangeTime", path) or ""
    ts = opt_time(alarm, "StateChangeTime", path) or opt_time(envelope, "Timestamp", ROOT) or at

    reason = opt_text(alarm, "NewStateReason", path) or ""
    found = _DATAPOINT.search(reason)
    description = "\n".join(
        part for part in (opt_text(alarm, "AlarmDescription", path), reason) if part
    )

    metric, dimensions = _metric(alarm, path)
    labels = {
        **dimensions,
        **metric,
        "aws_account_id": account,
        "region": region,
        "region_name": opt_text(alarm, "Region", path) or "",
        "old_state": opt_text(alarm, "OldStateValue", path) or "",
        "new_state": state,
        "topic_arn": opt_text(envelope, "TopicArn", ROOT) or "",
    }
    host = next((dimensions[d] for d in HOST_DIMENSIONS if dimensions.get(d)), "")
    if not host and len(dimensions) == 1:
        host = next(iter(dimensions.values()))
    return event(
        event_id=delivery_id(SOURCE, message_id)
        if message_id
        else derived_id(SOURCE, fingerprint, state, changed),
        ts=ts,
        source=SOURCE,
        source_id=source_id,
        fingerprint=fingerprint,
        title=name or source_id,
        description=description,
        severity=severity,
        status=status,
        service=metric.get("namespace", ""),
        host=host,
        value=float(found.group(1)) if found else None,
        labels={k: v for k, v in labels.items() if v},
        raw=compact_json(envelope, ROOT),
    )


def _metric(alarm: Mapping[str, Any], path: str) -> tuple[dict[str, str], dict[str, str]]:
    """Metric name, namespace, statistic, threshold and dimensions of a single-metric alarm,
    or of the first `MetricStat` of a metric-math / anomaly-detection one."""
    tpath = join(path, "Trigger")
    trigger = opt_object(alarm, "Trigger", path)
    if trigger is None:
        return {}, {}
    out: dict[str, str] = {
        "threshold": opt_text(trigger, "Threshold", tpath, numbers=True) or "",
        "comparison_operator": opt_text(trigger, "ComparisonOperator", tpath) or "",
        "statistic": opt_text(trigger, "Statistic", tpath) or "",
    }
    metric: Mapping[str, Any] = trigger
    mpath = tpath
    for i, item in enumerate(opt_list(trigger, "Metrics", tpath) or []):
        ipath = join(join(tpath, "Metrics"), i)
        stat = opt_object(as_object(item, ipath), "MetricStat", ipath)
        if stat is not None:
            spath = join(ipath, "MetricStat")
            metric, mpath = opt_object(stat, "Metric", spath) or {}, join(spath, "Metric")
            out["statistic"] = out["statistic"] or opt_text(stat, "Stat", spath) or ""
            break
    out["metric_name"] = opt_text(metric, "MetricName", mpath) or ""
    out["namespace"] = opt_text(metric, "Namespace", mpath) or ""
    dimensions: dict[str, str] = {}
    for i, item in enumerate(opt_list(metric, "Dimensions", mpath) or []):
        dpath = join(join(mpath, "Dimensions"), i)
        dim = as_object(item, dpath)
        # Alarm payloads spell them name/value; the CloudWatch API spells them Name/Value.
        key = opt_text(dim, "name", dpath) or opt_text(dim, "Name", dpath)
        value = opt_text(dim, "value", dpath, numbers=True) or opt_text(
            dim, "Value", dpath, numbers=True
        )
        if key and value:
            dimensions[key] = value
    return out, dimensions


def _region(arn: str | None) -> str:
    """`arn:aws:cloudwatch:ap-northeast-2:2577...:alarm:EC2-CPU` → `ap-northeast-2`."""
    parts = (arn or "").split(":")
    return parts[3] if len(parts) > 4 and parts[0] == "arn" else ""
