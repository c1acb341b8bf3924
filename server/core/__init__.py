"""The transport-neutral core: the registry of served pairs, the data plane (one method per use
case) and the explain use case. Nothing here knows about gRPC; see docs/architecture.md."""
