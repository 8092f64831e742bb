"""memtube: lock-free shared-memory message rings between processes.

Zero-copy IPC on one machine: ``listen`` in one process, ``connect`` in
another, then send and receive messages through a ring in shared memory
(no serialization, no system call while both sides are busy).

>>> import memtube
>>> with memtube.listen("@demo") as l:          # doctest: +SKIP
...     conn = l.accept()
...     for msg in conn.receiver:               # ends when the peer closes
...         print(msg.type_id, bytes(msg))

A received :class:`Message` is a read-only view into the ring
(``memoryview(msg)``, ``numpy.frombuffer(msg, dtype)``, ``bytes(msg)``,
``numpy.from_dlpack(msg)``), valid until it is released (``msg.release()``,
a ``with`` block, the next receive on the same receiver). ``Sender.reserve(n)``
gives a writable :class:`Grant` to fill in place and commit.

Blocking calls release the GIL while they wait and stop within about 50 ms
on Ctrl-C (``KeyboardInterrupt``), losing nothing. Errors are subclasses of
:class:`memtube.Error`. See docs/python.md in the repository.
"""

from ._memtube import (
    __version__,
    listen,
    connect,
    Listener,
    Connection,
    Sender,
    Receiver,
    Message,
    Grant,
    Stats,
    PeerCred,
    # Exceptions (one base, one class per kind).
    Error,
    Disconnected,
    Empty,
    Full,
    Timeout,
    Closed,
    PeerGone,
    Cancelled,
    TooLarge,
    ReplyTooLarge,
    Corrupt,
    Handshake,
    Protocol,
    PermissionDenied,
    AddrInUse,
    NoListener,
    NotASocket,
    NoSuchHandle,
    Unsupported,
    OsError,
    InvalidArgument,
    Busy,
    BadRegion,
    RoleTaken,
)

__all__ = [
    "__version__",
    "listen",
    "connect",
    "Listener",
    "Connection",
    "Sender",
    "Receiver",
    "Message",
    "Grant",
    "Stats",
    "PeerCred",
    "Error",
    "Disconnected",
    "Empty",
    "Full",
    "Timeout",
    "Closed",
    "PeerGone",
    "Cancelled",
    "TooLarge",
    "ReplyTooLarge",
    "Corrupt",
    "Handshake",
    "Protocol",
    "PermissionDenied",
    "AddrInUse",
    "NoListener",
    "NotASocket",
    "NoSuchHandle",
    "Unsupported",
    "OsError",
    "InvalidArgument",
    "Busy",
    "BadRegion",
    "RoleTaken",
]
