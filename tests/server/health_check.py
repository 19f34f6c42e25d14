#!/usr/bin/python3
"""grpc.health.v1 Check with Debian's python3-grpcio, a client tuneledger did not write.

Usage: health_check.py HOST:PORT [SERVICE]
Prints the serving status name (SERVING, NOT_SERVING, ...) and exits 0 when the call worked.
Debian ships no grpc_health module, so the request and response are encoded by hand:
  HealthCheckRequest  { string service = 1; }
  HealthCheckResponse { ServingStatus status = 1; }  UNKNOWN=0 SERVING=1 NOT_SERVING=2
                                                     SERVICE_UNKNOWN=3
"""
import sys

import grpc

STATUS_NAMES = {0: "UNKNOWN", 1: "SERVING", 2: "NOT_SERVING", 3: "SERVICE_UNKNOWN"}


def encode_request(service: str) -> bytes:
    data = service.encode()
    if not data:
        return b""
    if len(data) > 127:
        raise ValueError("service name too long for this one-byte length encoder")
    return b"\x0a" + bytes([len(data)]) + data


def decode_status(response: bytes) -> int:
    # A proto3 enum equal to 0 is not on the wire: an empty message means UNKNOWN.
    if not response:
        return 0
    if response[0] != 0x08 or len(response) < 2:
        raise ValueError(f"unexpected HealthCheckResponse bytes: {response!r}")
    return response[1]


def main() -> int:
    address = sys.argv[1]
    service = sys.argv[2] if len(sys.argv) > 2 else ""
    with grpc.insecure_channel(address) as channel:
        check = channel.unary_unary("/grpc.health.v1.Health/Check")
        response = check(encode_request(service), timeout=10)
    print(STATUS_NAMES.get(decode_status(response), "INVALID"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
