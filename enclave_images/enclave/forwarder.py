"""Inside the enclave: relay local TCP connections (boto3's TLS to KMS) to the parent's vsock-proxy.

    python -m enclave_images.enclave.forwarder --listen 127.0.0.1:443 --vsock 3:8000

It relays bytes only: TLS is negotiated between boto3 in the enclave and KMS, so neither this
relay nor the parent sees the request or the response. The parent's vsock-proxy allowlist admits
the region's KMS endpoint and nothing else.
"""

from __future__ import annotations

import argparse
import contextlib
import socket
import threading

from enclave_images.protocol import Address

BUFFER = 64 * 1024


def _pump(source: socket.socket, sink: socket.socket) -> None:
    try:
        while data := source.recv(BUFFER):
            sink.sendall(data)
    except OSError:
        pass
    finally:
        for sock, how in ((sink, socket.SHUT_WR), (source, socket.SHUT_RD)):
            with contextlib.suppress(OSError):  # the peer may be gone already
                sock.shutdown(how)


def relay(client: socket.socket, upstream: Address) -> None:
    with client, upstream.connect(timeout=None) as server:
        back = threading.Thread(target=_pump, args=(server, client), daemon=True)
        back.start()
        _pump(client, server)
        back.join()


def serve(listen: Address, upstream: Address) -> None:
    listener = listen.listen()
    while True:
        client, _ = listener.accept()
        threading.Thread(target=relay, args=(client, upstream), daemon=True).start()


def main() -> None:  # pragma: no cover - the enclave's entry point
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--listen", default="127.0.0.1:443")
    parser.add_argument("--vsock", default="3:8000", help="CID:PORT of the parent's vsock-proxy")
    args = parser.parse_args()
    serve(Address.parse(f"tcp:{args.listen}"), Address.parse(f"vsock:{args.vsock}"))


if __name__ == "__main__":
    main()
