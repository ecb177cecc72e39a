"""Schemathesis hooks for BetterVideo's API fuzz run (scripts/api-fuzz.sh).

tus sends upload bytes as application/offset+octet-stream, a media type
schemathesis has no serializer for: send whatever it generated as bytes.
"""

import schemathesis
from schemathesis.transport.serialization import serialize_binary


@schemathesis.serializer("application/offset+octet-stream")
def offset_octet_stream(ctx, value):
    return {"data": serialize_binary(value)}
