"""Protocol buffer sources we write for the gRPC APIs kubemini speaks, and their generated stubs."""
