"""CloudWatch alarms through SNS (real and derived deliveries) → canonical events or handshakes."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import orjson
import pytest
from hypothesis import HealthCheck, given, settings

from engine.normalize import cloudwatch, normalize
from engine.schema import EVENT_SCHEMA, EventValidationError, identity_hash
from tests.engine.normalize import fuzzing

ARN = "arn:aws:cloudwatch:ap-northeast-2:257706363616:alarm:EC2-CPU"
NAMES = [
    "cloudwatch-sns-alarm.json",
    "cloudwatch-sns-ok.json",
    "cloudwatch-sns-subscription-confirmation.json",
]


def _with_message(doc, **changes):
    message = json.loads(doc["Message"])
    message.update(changes)
    doc["Message"] = json.dumps(message)
    return doc


def test_alarm_reads_every_canonical_field(rows, body, payload):
    [ev] = rows("cloudwatch", body("cloudwatch-sns-alarm.json"))
    assert ev["ts"] == datetime(2021, 6, 23, 8, 41, 6, 622000, tzinfo=UTC)
    assert ev["status"] == "firing"
    assert ev["severity"] == "high"
    assert ev["kind"] == "alert"
    assert ev["source"] == "cloudwatch"
    assert ev["source_id"] == ARN
    assert ev["fingerprint"] == identity_hash("cloudwatch", ARN)
    assert ev["event_id"] == "cloudwatch:e7c82e01-7cd8-5569-9ac1-774d893afc01"
    assert ev["title"] == "EC2-CPU"
    assert ev["description"].startswith("Threshold Crossed: 1 out of the last 1 datapoints")
    assert (ev["service"], ev["environment"], ev["host"]) == ("AWS/EC2", "", "i-0f672ea50a80cda4b")
    assert ev["value"] == 17.2564528039004
    assert ev["labels"] == {
        "InstanceId": "i-0f672ea50a80cda4b",
        "metric_name": "CPUUtilization",
        "namespace": "AWS/EC2",
        "statistic": "AVERAGE",
        "threshold": "15.0",
        "comparison_operator": "GreaterThanThreshold",
        "aws_account_id": "257706363616",
        "region": "ap-northeast-2",
        "region_name": "Asia Pacific (Seoul)",
        "old_state": "INSUFFICIENT_DATA",
        "new_state": "ALARM",
        "topic_arn": "arn:aws:sns:ap-northeast-2:257706363616:spaceone-notification",
    }
    assert orjson.loads(ev["raw"]) == payload("cloudwatch-sns-alarm.json")


def test_ok_resolves_the_same_alarm(rows, body):
    [fire] = rows("cloudwatch", body("cloudwatch-sns-alarm.json"))
    [done] = rows("cloudwatch", body("cloudwatch-sns-ok.json"))
    assert done["status"] == "resolved"
    assert done["fingerprint"] == fire["fingerprint"]
    assert done["ts"] == datetime(2021, 6, 23, 9, 11, 6, 622000, tzinfo=UTC)
    assert done["value"] == 3.1
    assert done["event_id"] != fire["event_id"]


def test_insufficient_data_fires_at_low(rows, payload):
    doc = _with_message(payload("cloudwatch-sns-alarm.json"), NewStateValue="INSUFFICIENT_DATA")
    [ev] = rows("cloudwatch", doc)
    assert (ev["status"], ev["severity"]) == ("firing", "low")


def test_subscription_confirmation_gives_the_url_to_fetch_and_no_event(body, received_at):
    result = normalize(
        "cloudwatch",
        body("cloudwatch-sns-subscription-confirmation.json").decode(),  # text/plain
        received_at=received_at,
        headers={"x-amz-sns-message-type": "SubscriptionConfirmation"},
    )
    assert result.events.is_empty()
    assert result.events.schema == EVENT_SCHEMA
    assert result.confirm_url is not None
    assert result.confirm_url.startswith(
        "https://sns.us-west-2.amazonaws.com/?Action=ConfirmSubscription&TopicArn="
    )
    assert (
        result.note
        == "SNS subscription confirmation for arn:aws:sns:us-west-2:123456789012:MyTopic"
    )


@pytest.mark.parametrize(
    "url",
    [
        "http://sns.us-west-2.amazonaws.com/?Action=ConfirmSubscription",
        "https://169.254.169.254/latest/meta-data/",
        "https://sns.us-west-2.amazonaws.com.evil.example/?x",
        "https://evil.example/?sns.us-west-2.amazonaws.com/",
    ],
)
def test_a_subscribe_url_off_sns_is_refused(payload, received_at, url):
    doc = payload("cloudwatch-sns-subscription-confirmation.json")
    doc["SubscribeURL"] = url
    with pytest.raises(EventValidationError) as caught:
        normalize("cloudwatch", doc, received_at=received_at)
    assert caught.value.field == "SubscribeURL"


def test_unsubscribe_confirmation_is_a_note(payload, received_at):
    doc = payload("cloudwatch-sns-subscription-confirmation.json")
    doc["Type"] = "UnsubscribeConfirmation"
    result = normalize("cloudwatch", doc, received_at=received_at)
    assert result.events.is_empty()
    assert result.confirm_url is None
    assert result.note is not None
    assert "unsubscribe" in result.note


def test_type_may_come_from_the_header_alone(rows, payload):
    doc = payload("cloudwatch-sns-alarm.json")
    del doc["Type"]
    [ev] = rows("cloudwatch", doc, headers={"X-Amz-Sns-Message-Type": "Notification"})
    assert ev["status"] == "firing"


def test_an_unwrapped_alarm_message_is_read_too(rows, payload):
    message = json.loads(payload("cloudwatch-sns-alarm.json")["Message"])
    [ev] = rows("cloudwatch", message)
    assert (ev["fingerprint"], ev["status"]) == (identity_hash("cloudwatch", ARN), "firing")


def test_without_alarm_arn_the_identity_is_rebuilt_from_account_region_and_name(rows, payload):
    doc = payload("cloudwatch-sns-ok.json")
    message = json.loads(doc["Message"])
    del message["AlarmArn"]
    doc["Message"] = json.dumps(message)
    doc.pop("MessageId")
    [ev] = rows("cloudwatch", doc)
    assert ev["source_id"] == ARN  # region from TopicArn
    assert ev["fingerprint"] == identity_hash("cloudwatch", ARN)
    assert ev["event_id"].startswith("cloudwatch:")


def test_metric_math_alarm_reads_the_first_metric_stat(rows, payload):
    trigger = {
        "Period": 60,
        "EvaluationPeriods": 1,
        "ComparisonOperator": "GreaterThanUpperThreshold",
        "ThresholdMetricId": "ad1",
        "Metrics": [
            {"Expression": "ANOMALY_DETECTION_BAND(m1, 2)", "Id": "ad1", "ReturnData": True},
            {
                "Id": "m1",
                "ReturnData": True,
                "MetricStat": {
                    "Metric": {
                        "Dimensions": [{"value": "orders-db", "name": "DBInstanceIdentifier"}],
                        "MetricName": "CPUUtilization",
                        "Namespace": "AWS/RDS",
                    },
                    "Period": 60,
                    "Stat": "Average",
                },
            },
        ],
    }
    doc = _with_message(payload("cloudwatch-sns-alarm.json"), Trigger=trigger)
    [ev] = rows("cloudwatch", doc)
    assert (ev["service"], ev["host"]) == ("AWS/RDS", "orders-db")
    assert ev["labels"]["statistic"] == "Average"


def test_signature_hook_is_off_by_default_and_refuses_when_it_says_no(
    body, received_at, monkeypatch
):
    assert cloudwatch.verify_signature is None
    seen = []

    def refuse(envelope, signed):
        seen.append(signed)
        return False

    monkeypatch.setattr(cloudwatch, "verify_signature", refuse)
    with pytest.raises(EventValidationError) as caught:
        normalize("cloudwatch", body("cloudwatch-sns-alarm.json"), received_at=received_at)
    assert caught.value.field == "Signature"
    assert seen[0].startswith(b"Message\n{")
    assert b"\nMessageId\ne7c82e01-7cd8-5569-9ac1-774d893afc01\nSubject\n" in seen[0]
    assert seen[0].endswith(b"\nType\nNotification\n")

    monkeypatch.setattr(cloudwatch, "verify_signature", lambda envelope, signed: True)
    result = normalize("cloudwatch", body("cloudwatch-sns-alarm.json"), received_at=received_at)
    assert result.events.height == 1


@pytest.mark.parametrize("name", NAMES[:2])
def test_a_retried_delivery_gives_the_same_event_id(rows, body, name, received_at):
    first = rows("cloudwatch", body(name))
    again = rows("cloudwatch", body(name), at=received_at + timedelta(minutes=1))
    assert first[0]["event_id"] == again[0]["event_id"]


@pytest.mark.parametrize(
    ("edit", "field"),
    [
        (lambda d: d.update(Message="not json"), "Message"),
        (lambda d: d.update(Message="[1]"), "Message"),
        (lambda d: d.pop("Message"), "Message"),
        (lambda d: d.update(Type="Telegram"), "Type"),
        (lambda d: d.pop("Type"), "Type"),
        (lambda d: _with_message(d, NewStateValue="BROKEN"), "Message.NewStateValue"),
        (lambda d: _with_message(d, StateChangeTime="noon"), "Message.StateChangeTime"),
        (lambda d: _with_message(d, AlarmArn=None, AlarmName=None), "Message.AlarmArn"),
        (
            lambda d: _with_message(d, Trigger={"Dimensions": [{"name": 1}]}),
            "Message.Trigger.Dimensions[0].name",
        ),
    ],
)
def test_invalid_payloads_name_the_field(payload, received_at, edit, field):
    doc = payload("cloudwatch-sns-alarm.json")
    edit(doc)
    with pytest.raises(EventValidationError) as caught:
        normalize("cloudwatch", doc, received_at=received_at)
    assert caught.value.field == field


@pytest.mark.hypothesis
@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    doc=fuzzing.json_values
    | fuzzing.damaged_sns(fuzzing.load(NAMES[0]))
    | fuzzing.damaged(fuzzing.load(NAMES[2]))
)
def test_fuzzed_payloads_normalize_or_name_the_field(doc):
    fuzzing.assert_normalizes_or_refuses("cloudwatch", doc)
