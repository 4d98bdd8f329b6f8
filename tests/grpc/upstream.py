"""A gRPC upstream standing in for one cluster's service (h2c on a free loopback port).

Usage: upstream.py NAME. Serves the unary method /xcluster.Echo/Who without generated
code: request and response are raw bytes, the response is NAME. Prints the port on its
first line, then serves until its standard input closes (the test harness holds it).
"""

import sys
import threading
from concurrent import futures

import grpc


def main() -> None:
    name = sys.argv[1].encode()
    seen = []

    def who(request: bytes, context: grpc.ServicerContext) -> bytes:
        seen.append(len(request))
        return name

    handler = grpc.method_handlers_generic_handler(
        "xcluster.Echo", {"Who": grpc.unary_unary_rpc_method_handler(who)}
    )
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    server.add_generic_rpc_handlers((handler,))
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    print(port, flush=True)
    done = threading.Event()

    def watch_stdin() -> None:
        sys.stdin.read()
        done.set()

    threading.Thread(target=watch_stdin, daemon=True).start()
    done.wait()
    server.stop(0)


if __name__ == "__main__":
    main()
