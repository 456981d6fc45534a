"""Protocol-buffer wire encoding by hand, for tests that send messages no Python client writes
(remote-write requests, the protobuf exposition with native histograms)."""


def varint(n):
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def zigzag(n):
    """A sint32/sint64 value as its varint encodes it."""
    return (n << 1) ^ (n >> 63)


def field(num, wire, payload):
    """Field `num` of wire type `wire` followed by its already-encoded payload."""
    return varint(num << 3 | wire) + payload


def message(num, body):
    """A length-delimited field: an embedded message, bytes or packed values."""
    return field(num, 2, varint(len(body)) + body)


def text(num, s):
    return message(num, s.encode())
