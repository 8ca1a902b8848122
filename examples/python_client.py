"""A V3 client on aether_client: heartbeats, reconnects and recovery come with the library.

    python examples/python_client.py ws://127.0.0.1:8000 team_a1 device_py1

Give several base URLs, comma-separated, to fail over between nodes. It lists who is online,
says hello, and prints what it receives until interrupted.
"""

import asyncio
import contextlib
import logging
import sys

import aether_client
from aether_client import MessageV3, Resync, ServerError


async def main(urls: list[str], group_id: str, client_id: str) -> None:
    async with aether_client.connect(urls, group_id=group_id, client_id=client_id) as client:
        print("online:", await client.members())  # load the state your UI shows here
        await client.send_group(msg="Hello from Python")
        # Refused by the server (only your own from_id is allowed): an error reply comes back.
        await client.send(MessageV3(msg_type="msg", target="group", from_id="someone_else"))
        async for item in client:  # every message once, in order, across reconnects
            match item:
                case MessageV3(msg_type="presence", payload={"event": event, "client_id": who}):
                    print(who, "came online" if event == "join" else "went offline")
                case MessageV3():
                    sender = item.from_id or "the platform"
                    print(f"{item.msg_type} from {sender}: {item.msg or item.cmd}")
                case ServerError():
                    print(f"rejected ({item.code}): {item.msg}")
                case Resync():  # messages may have been lost: refetch what you derive from them
                    print(f"refetch {item.stream or 'everything'} ({item.reason})")


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(name)s: %(message)s")  # shows reconnects
    if len(sys.argv) != 4:
        sys.exit(__doc__)
    with contextlib.suppress(KeyboardInterrupt):  # Ctrl-C: leaving `async with` closes cleanly
        asyncio.run(main(sys.argv[1].split(","), sys.argv[2], sys.argv[3]))
