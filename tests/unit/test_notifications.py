"""Pure rules of notifications: the backoff, the message (made of the tier, the unit's name, the
deadline and a link, nothing else), receipts kept only when they look like ids, and the
configuration (channels on when configured, secrets out of ``repr``)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from api import channels
from api.settings import NotifySettings, Settings, SmtpSecurity
from domain.cases import RiskLevel
from domain.notifications import (
    BACKOFF_CAP,
    Channel,
    RetryPolicy,
    alert_global_id,
    render,
    safe_receipt,
)


def test_backoff_doubles_from_the_base_up_to_an_hour() -> None:
    policy = RetryPolicy(max_attempts=6, base=timedelta(seconds=30))
    assert [policy.delay(n).total_seconds() for n in range(1, 6)] == [30, 60, 120, 240, 480]
    assert policy.delay(40) == BACKOFF_CAP == timedelta(hours=1)


def test_the_message_is_the_tier_the_unit_the_deadline_and_a_link() -> None:
    deadline = datetime(2026, 12, 4, 13, 30, tzinfo=UTC)
    message = render(
        notification_id=7,
        alert_id=42,
        tier=RiskLevel.HIGH,
        unit_name="东湖第1社区第1网格",
        deadline=deadline,
        link_base="https://xq.example/alerts/",
    )
    assert message.text == (
        "【心桥】东湖第1社区第1网格有一条高风险预警待确认，请于2026-12-04 21:30（北京时间）前登录确认。"
        f"https://xq.example/alerts/{alert_global_id(42)}"
    )
    assert message.subject == "【心桥】高风险预警待确认：东湖第1社区第1网格"
    assert message.reference == "xinqiao-n7"
    assert alert_global_id(42) == "QWxlcnQ6NDI="  # what the API calls Alert 42
    bare = render(
        notification_id=7,
        alert_id=42,
        tier=RiskLevel.LOW,
        unit_name="x",
        deadline=deadline,
        link_base="",
    )
    assert bare.text.endswith("预警编号 QWxlcnQ6NDI=") and "低风险" in bare.text


@pytest.mark.parametrize(
    ("value", "kept"),
    [
        ("gw-123", "gw-123"),
        (98765, "98765"),
        ("<abc.xinqiao-n1@xinqiao>", "<abc.xinqiao-n1@xinqiao>"),
        ("sent to 13800000000 张三", None),
        ("x" * 129, None),
        ({"id": 1}, None),
        (None, None),
    ],
)
def test_a_receipt_is_kept_only_when_it_looks_like_an_id(value: object, kept: str | None) -> None:
    assert safe_receipt(value) == kept


def test_channels_are_on_when_configured_and_secrets_stay_out_of_repr() -> None:
    settings = Settings.from_env(
        {
            "XINQIAO_SMTP_HOST": "smtp.example",
            "XINQIAO_SMTP_SECURITY": "tls",
            "XINQIAO_SMTP_PORT": "465",
            "XINQIAO_SMTP_USERNAME": "xinqiao",
            "XINQIAO_SMTP_PASSWORD": "smtp-secret",
            "XINQIAO_SMS_URL": "https://sms.example/send",
            "XINQIAO_SMS_TOKEN": "sms-secret",
            "XINQIAO_WEBHOOK_HOSTS": "qyapi.weixin.qq.com, OAPI.dingtalk.com",
            "XINQIAO_NOTIFY_MAX_ATTEMPTS": "4",
            "XINQIAO_NOTIFY_BACKOFF_SECONDS": "15",
        }
    )
    notify = settings.notify
    assert notify.smtp_security is SmtpSecurity.TLS and notify.smtp_port == 465
    assert notify.webhook_hosts == ("qyapi.weixin.qq.com", "oapi.dingtalk.com")
    assert (notify.max_attempts, notify.backoff_seconds) == (4, 15.0)
    senders = channels.from_settings(notify)
    assert set(senders) == {Channel.EMAIL, Channel.SMS, Channel.WEBHOOK}
    shown = repr(settings) + repr(senders)
    assert "smtp-secret" not in shown and "sms-secret" not in shown
    assert channels.from_settings(NotifySettings()) == {}, "nothing configured, nothing on"


@pytest.mark.parametrize(
    "env",
    [
        {"XINQIAO_SMTP_SECURITY": "ssl3"},
        {"XINQIAO_NOTIFY_MAX_ATTEMPTS": "0"},
        {"XINQIAO_SMS_URL": "https://sms.example/send"},  # no token
    ],
)
def test_bad_notification_settings_stop_the_server(env: dict[str, str]) -> None:
    with pytest.raises(SystemExit):
        Settings.from_env(env)
