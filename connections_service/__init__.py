"""The Connections Service: who is connected to whom, over gRPC (docs/connections-service.md).

`proto/` holds the contract (`connections.proto`) and its generated stubs;
`service.py` answers each method from PostgreSQL; `server.py` runs it with the
standard health-checking and reflection services beside it.
"""
