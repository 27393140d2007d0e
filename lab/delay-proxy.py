#!/usr/bin/env python3
"""TCP forwarder that holds every chunk for a fixed delay, in order, both ways.

The lab's kernel has no netem, so added latency on the redirection path is made here:
the session's tunnels connect to this proxy instead of the client's daemon.
"""
import argparse
import asyncio


async def pump(reader, writer, delay_s):
    loop = asyncio.get_running_loop()
    queue = asyncio.Queue()

    async def sender():
        while True:
            due, data = await queue.get()
            if data is None:
                break
            wait = due - loop.time()
            if wait > 0:
                await asyncio.sleep(wait)
            writer.write(data)
            await writer.drain()
        writer.close()

    task = asyncio.create_task(sender())
    try:
        while True:
            data = await reader.read(65536)
            if not data:
                break
            queue.put_nowait((loop.time() + delay_s, data))
    finally:
        queue.put_nowait((0, None))
        await task


async def handle(reader, writer, target, delay_s):
    host, port = target.rsplit(":", 1)
    try:
        up_reader, up_writer = await asyncio.wait_for(
            asyncio.open_connection(host, int(port)), timeout=5
        )
    except (OSError, asyncio.TimeoutError):
        writer.close()
        return
    await asyncio.gather(
        pump(reader, up_writer, delay_s),
        pump(up_reader, writer, delay_s),
        return_exceptions=True,
    )


async def main():
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--listen", required=True, help="HOST:PORT to accept on")
    p.add_argument("--target", required=True, help="HOST:PORT to forward to")
    p.add_argument("--delay-ms", type=int, required=True)
    a = p.parse_args()
    host, port = a.listen.rsplit(":", 1)
    server = await asyncio.start_server(
        lambda r, w: handle(r, w, a.target, a.delay_ms / 1000), host, int(port)
    )
    # Who starts it waits for this line before connecting.
    print(f"listening on {a.listen}", flush=True)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    asyncio.run(main())
