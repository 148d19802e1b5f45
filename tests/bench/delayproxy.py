#!/usr/bin/python3
"""delayproxy.py LISTEN_IP:PORT TARGET_IP:PORT DELAY_MS -- a TCP proxy for
make bench (measurement (c)) that delays every byte by DELAY_MS in each
direction (so 40 gives an 80 ms round trip; this kernel has no netem).
Data keeps its order; each chunk is released DELAY_MS after it was read."""
import asyncio, sys, time


async def pump(reader, writer, delay):
    q = asyncio.Queue()

    async def sender():
        while True:
            t, data = await q.get()
            wait = t + delay - time.monotonic()
            if wait > 0:
                await asyncio.sleep(wait)
            if data is None:
                break
            writer.write(data)
            await writer.drain()
        try:
            writer.close()
        except Exception:
            pass

    task = asyncio.ensure_future(sender())
    try:
        while True:
            data = await reader.read(65536)
            q.put_nowait((time.monotonic(), data or None))
            if not data:
                break
    except Exception:
        q.put_nowait((time.monotonic(), None))
    await task


async def main():
    lh, lp = sys.argv[1].rsplit(":", 1)
    th, tp = sys.argv[2].rsplit(":", 1)
    delay = float(sys.argv[3]) / 1000.0

    async def handle(r1, w1):
        try:
            r2, w2 = await asyncio.open_connection(th, int(tp))
        except Exception:
            w1.close()
            return
        await asyncio.gather(pump(r1, w2, delay), pump(r2, w1, delay),
                             return_exceptions=True)

    srv = await asyncio.start_server(handle, lh, int(lp))
    async with srv:
        await srv.serve_forever()

asyncio.run(main())
