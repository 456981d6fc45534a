"""Sends an error and what its user said about it through the real sentry-python SDK: a
`user_report` item (what the SDK's user-feedback API sent) and a feedback event of the kind
current SDKs' feedback widgets send, both through the SDK's own transport."""

import sys
import uuid

import sentry_sdk
from sentry_sdk.envelope import Envelope, Item, PayloadRef

sentry_sdk.init(dsn=sys.argv[1], release="shop@6.0.0")
try:
    raise ValueError("coupon SPRING is not valid")
except ValueError:
    event_id = sentry_sdk.capture_exception()
sentry_sdk.flush(10)
transport = sentry_sdk.get_client().transport
report = {"event_id": event_id, "name": "Ada", "email": "ada@example.com",
          "comments": "The coupon from the newsletter does not work."}
transport.capture_envelope(Envelope(headers={"event_id": event_id},
                                    items=[Item(payload=PayloadRef(json=report), type="user_report")]))
feedback = {"event_id": uuid.uuid4().hex, "type": "feedback", "platform": "python",
            "contexts": {"feedback": {"message": "Checkout broke right after I applied it.",
                                      "contact_email": "grace@example.com", "name": "Grace",
                                      "associated_event_id": event_id}}}
transport.capture_envelope(Envelope(headers={"event_id": feedback["event_id"]},
                                    items=[Item(payload=PayloadRef(json=feedback), type="feedback")]))
sentry_sdk.flush(10)
print(event_id)
