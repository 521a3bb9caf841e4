"""The user-facing entry points of kubemini: running a cluster and the test harness."""
