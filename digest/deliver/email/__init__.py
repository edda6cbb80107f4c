"""Mail delivery: compose digest messages (``digest.compose``) and send them over SMTP (``digest.smtp``).

The work lives in two modules so each stays small; import from here.
"""

from __future__ import annotations

from digest.deliver.email.message import (
    MailSettings,
    check_mail_settings,
    compose,
    message_id,
    sanitize_header_text,
    unsubscribe_mailto_url,
    unsubscribe_token,
    unsubscribe_url,
    validate_address,
    verify_unsubscribe_token,
)
from digest.deliver.email.smtp import Outgoing, SendResult, SendSummary, SmtpSettings, check_smtp_settings, send_all

__all__ = [
    "MailSettings",
    "Outgoing",
    "SendResult",
    "SendSummary",
    "SmtpSettings",
    "check_mail_settings",
    "check_smtp_settings",
    "compose",
    "message_id",
    "sanitize_header_text",
    "send_all",
    "unsubscribe_mailto_url",
    "unsubscribe_token",
    "unsubscribe_url",
    "validate_address",
    "verify_unsubscribe_token",
]
