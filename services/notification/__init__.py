"""The notification service: pushes for members who had no live connection (message path step 4).

It consumes notification jobs from RabbitMQ (`notifications.send`, queued by
message_processor) and sends each to the user's devices through FCM HTTP v1, APNs
(HTTP/2), a generic webhook, or the log, with retries and backoff.

Modules, by concern:
- `settings.py`   NotificationSettings (WHATSAPP_* variables: providers, credentials,
                  endpoints, privacy, retry policy)
- `jobs.py`       PushJob, parse_job, InvalidJob (a malformed job: dead-letter it)
- `base.py`       Device, PushPayload, Outcome, SendResult, the Sender interface
- `fcm.py`, `apns.py`, `webhook.py`, `log_sender.py`   one sender per provider
- `transport.py`  the pooled httpx clients and the reading of HTTP failures
- `providers.py`  build_senders(settings): a sender per device platform, or disabled
- `delivery.py`   Delivery, deliver_job: retries, dead-token removal, metrics, logs
- `store.py`      load_devices, remove_device (SQL on accounts)

Variables beyond the common ones (services/README.md); `_FILE` works for each:

| variable | default |
| --- | --- |
| `WHATSAPP_RABBITMQ_URL` | required (amqp:// or amqps://) |
| `WHATSAPP_NOTIFICATIONS_QUEUE` | `notifications.send` |
| `WHATSAPP_PUSH_PROVIDERS` | `fcm,apns,webhook` (any of fcm, apns, webhook, log) |
| `WHATSAPP_PUSH_PRIVACY_IDS_ONLY` | `true`: pushes carry ids, never the message body |
| `WHATSAPP_PUSH_ALERT_TITLE` | `New message` |
| `WHATSAPP_PUSH_BODY_MAX_BYTES` | 1000 (FCM and APNs bodies are cut to this) |
| `WHATSAPP_PUSH_TIMEOUT_SECONDS` | 5 (each FCM or APNs request) |
| `WHATSAPP_PUSH_MAX_ATTEMPTS` | 4 |
| `WHATSAPP_PUSH_RETRY_BASE_SECONDS` / `_MAX_SECONDS` | 0.5 / 8 |
| `WHATSAPP_PUSH_CA_FILE` | unset (public CAs) |
| `WHATSAPP_FCM_BASE_URL` | `https://fcm.googleapis.com` |
| `WHATSAPP_FCM_PROJECT_ID` | the service-account key's `project_id` |
| `WHATSAPP_FCM_CREDENTIALS_JSON` | unset: FCM disabled (unless a static token is given) |
| `WHATSAPP_FCM_ACCESS_TOKEN` | unset (a static bearer token, for tests) |
| `WHATSAPP_APNS_BASE_URL` | `https://api.push.apple.com` |
| `WHATSAPP_APNS_TEAM_ID`, `_KEY_ID`, `_PRIVATE_KEY` (.p8), `_TOPIC` | unset: APNs off (all four or none) |
| `WHATSAPP_WEBHOOK_TIMEOUT_SECONDS` | 5 |
"""

from services.notification.app import create_app

__all__ = ["create_app"]
