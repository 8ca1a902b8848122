"""Whether bytes wait unread in a transport's socket: a peek, nothing is consumed.

A node too busy to read tells late from silent this way: the HTTP guard spares a pending
connection whose request has arrived, and a Redis wire does not time out a reply that came
in time (uvloop runs due timers before it polls the sockets).
"""

from __future__ import annotations

import asyncio
import socket


def has_unread_bytes(transport: asyncio.BaseTransport) -> bool:
    """Whether bytes wait in the socket's receive buffer (a peek: nothing is read)."""
    try:
        peer = socket.socket(fileno=transport.get_extra_info("socket").fileno())
    except (AttributeError, OSError):
        return False
    try:
        return bool(peer.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT))
    except OSError:  # nothing yet (EAGAIN), or a broken socket: nothing on its way
        return False
    finally:
        peer.detach()  # the descriptor is the transport's: never closed here
