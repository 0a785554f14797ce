"""Generated gRPC stubs of `connections.proto` (`make proto`); never edited by hand."""
