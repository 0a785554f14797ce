from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from typing import ClassVar as _ClassVar, Optional as _Optional

DESCRIPTOR: _descriptor.FileDescriptor

class ListConnectionIdsRequest(_message.Message):
    __slots__ = ("user_id",)
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    user_id: str
    def __init__(self, user_id: _Optional[str] = ...) -> None: ...

class ConnectionIdsChunk(_message.Message):
    __slots__ = ("ids", "count")
    IDS_FIELD_NUMBER: _ClassVar[int]
    COUNT_FIELD_NUMBER: _ClassVar[int]
    ids: bytes
    count: int
    def __init__(self, ids: _Optional[bytes] = ..., count: _Optional[int] = ...) -> None: ...

class UserPair(_message.Message):
    __slots__ = ("user_id", "other_user_id")
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    OTHER_USER_ID_FIELD_NUMBER: _ClassVar[int]
    user_id: str
    other_user_id: str
    def __init__(self, user_id: _Optional[str] = ..., other_user_id: _Optional[str] = ...) -> None: ...

class AreConnectedReply(_message.Message):
    __slots__ = ("connected",)
    CONNECTED_FIELD_NUMBER: _ClassVar[int]
    connected: bool
    def __init__(self, connected: _Optional[bool] = ...) -> None: ...

class PendingRequestReply(_message.Message):
    __slots__ = ("pending", "connection_id", "requester_id")
    PENDING_FIELD_NUMBER: _ClassVar[int]
    CONNECTION_ID_FIELD_NUMBER: _ClassVar[int]
    REQUESTER_ID_FIELD_NUMBER: _ClassVar[int]
    pending: bool
    connection_id: str
    requester_id: str
    def __init__(self, pending: _Optional[bool] = ..., connection_id: _Optional[str] = ..., requester_id: _Optional[str] = ...) -> None: ...
