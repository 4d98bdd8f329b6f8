"""A real gRPC client (grpcio) for the e2e tests.

Usage: client.py TARGET AUTHORITY METHOD COUNT [CA CERT KEY]. Calls the unary METHOD
(e.g. /xcluster.Echo/Who) COUNT times on one channel (h2c, or TLS with a client certificate when CA, CERT and KEY are
given; the server is verified as AUTHORITY's host) with `:authority` AUTHORITY, and prints
one JSON line per call: {"code": <grpc status number>, "details": ..., "body": ...}.
"""

import json
import sys

import grpc


def main() -> None:
    target, authority, method, count = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
    options = [("grpc.default_authority", authority)]
    if len(sys.argv) > 5:
        ca, cert, key = (open(p, "rb").read() for p in sys.argv[5:8])
        credentials = grpc.ssl_channel_credentials(ca, key, cert)
        options.append(("grpc.ssl_target_name_override", authority.rsplit(":", 1)[0]))
        channel = grpc.secure_channel(target, credentials, options)
    else:
        channel = grpc.insecure_channel(target, options)
    who = channel.unary_unary(method)
    for _ in range(count):
        try:
            body = who(b"hi", timeout=10)
            reply = {"code": 0, "details": "", "body": body.decode()}
        except grpc.RpcError as e:
            reply = {"code": e.code().value[0], "details": e.details() or "", "body": ""}
        print(json.dumps(reply), flush=True)
    channel.close()


if __name__ == "__main__":
    main()
