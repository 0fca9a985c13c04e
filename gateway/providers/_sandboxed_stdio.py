"""The stdio transport of a sandboxed MCP server (ADR 0035): the MCP SDK's own ``stdio_client`` is
made for servers the operator trusts, so it hands the child the gateway's standard error and reads
lines of any length. A tenant's server is not trusted: here its standard error goes nowhere (it
would otherwise hold the gateway's log file or terminal, read-write), each line it writes is cut
off at a cap (past it the server is killed and the session ends), and it starts with a minimal
environment of its own."""

from __future__ import annotations

import contextlib
import logging
import subprocess
from collections.abc import AsyncIterator, Sequence

import anyio
import mcp_types as types
from anyio.streams.buffered import BufferedByteReceiveStream
from mcp.client._transport import TransportStreams
from mcp.shared.message import SessionMessage

from sandbox import HOST_ENVIRONMENT

logger = logging.getLogger(__name__)
STOP_SECONDS = 2.0  # an ended session's server has this long to leave once its input closes


@contextlib.asynccontextmanager
async def sandboxed_stdio(argv: Sequence[str], max_line: int, where: str) -> AsyncIterator[TransportStreams]:
    """Run ``argv`` (a sandbox's command line) and speak MCP over its standard streams."""
    process = await anyio.open_process(
        list(argv), stderr=subprocess.DEVNULL, env=HOST_ENVIRONMENT, start_new_session=True
    )
    assert process.stdout is not None and process.stdin is not None
    incoming, read_stream = anyio.create_memory_object_stream[SessionMessage | Exception](0)
    write_stream, outgoing = anyio.create_memory_object_stream[SessionMessage](0)

    async def reading() -> None:
        assert process.stdout is not None
        lines = BufferedByteReceiveStream(process.stdout)
        async with incoming:
            while True:
                try:
                    line = await lines.receive_until(b"\n", max_line)
                except anyio.DelimiterNotFound:
                    logger.warning("MCP server %s wrote a line over %d bytes: it is stopped", where, max_line)
                    process.kill()
                    return
                except (
                    anyio.EndOfStream,
                    anyio.IncompleteRead,
                    anyio.ClosedResourceError,
                    anyio.BrokenResourceError,
                ):
                    return
                if len(line) > max_line:  # (a whole line can arrive in one read, past the cap)
                    logger.warning("MCP server %s wrote a line over %d bytes: it is stopped", where, max_line)
                    process.kill()
                    return
                if not line.strip():
                    continue
                try:
                    message: SessionMessage | Exception = SessionMessage(
                        types.jsonrpc_message_adapter.validate_json(line, by_name=False)
                    )
                except ValueError as exc:
                    message = exc
                try:
                    await incoming.send(message)
                except (anyio.ClosedResourceError, anyio.BrokenResourceError):
                    return

    async def writing() -> None:
        assert process.stdin is not None
        async with outgoing:
            try:
                async for sent in outgoing:
                    body = sent.message.model_dump_json(by_alias=True, exclude_unset=True)
                    await process.stdin.send(body.encode() + b"\n")
            except (anyio.ClosedResourceError, anyio.BrokenResourceError, OSError):
                await incoming.aclose()

    async with anyio.create_task_group() as tg:
        tg.start_soon(reading)
        tg.start_soon(writing)
        try:
            yield read_stream, write_stream
        finally:
            with anyio.CancelScope(shield=True):
                with contextlib.suppress(OSError, anyio.BrokenResourceError, anyio.ClosedResourceError):
                    await process.stdin.aclose()
                with anyio.move_on_after(STOP_SECONDS):
                    await process.wait()
                if process.returncode is None:
                    with contextlib.suppress(ProcessLookupError):
                        process.kill()
                    await process.wait()
                await process.aclose()
                for stream in (read_stream, write_stream):
                    await stream.aclose()
            tg.cancel_scope.cancel()
