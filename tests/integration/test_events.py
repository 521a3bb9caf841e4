"""The event recorder against a real API server: repeats aggregate into one Event, as kubectl describe shows."""

from __future__ import annotations

import asyncio
import re

from machinery.client import CONFIG_MAPS, EVENTS, ApiClient, ClientConfig
from machinery.events import EventRecorder

RFC3339 = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z")


async def test_two_identical_warnings_make_one_event_with_count_two(apiserver, namespace) -> None:
    async with ApiClient(ClientConfig(server=apiserver.url)) as client:
        cm = await client.create(CONFIG_MAPS, {"metadata": {"name": "settings"}, "data": {"a": "1"}}, namespace)
        recorder = EventRecorder(client, "test-controller", "host-1")
        writer = asyncio.create_task(recorder.run())
        try:
            recorder.event(cm, "Warning", "BadValue", "key a must not be 1")
            recorder.event(cm, "Warning", "BadValue", "key a must not be 1")
            recorder.event(cm, "Normal", "Synced", "settings synced")
            await asyncio.wait_for(recorder.flush(), 10)
        finally:
            writer.cancel()
            await asyncio.wait({writer})

        listed = await client.request("GET", f"/api/v1/namespaces/{namespace}/events")
        events = {e["reason"]: e for e in listed["items"]}
        assert sorted(events) == ["BadValue", "Synced"]
        warning = events["BadValue"]
        assert warning["count"] == 2
        assert warning["type"] == "Warning" and warning["message"] == "key a must not be 1"
        assert re.fullmatch(r"settings\.[0-9a-f]{16}", warning["metadata"]["name"])
        assert warning["metadata"]["namespace"] == namespace
        involved = warning["involvedObject"]
        assert involved["kind"] == "ConfigMap" and involved["apiVersion"] == "v1"
        assert involved["name"] == "settings" and involved["namespace"] == namespace
        assert involved["uid"] == cm["metadata"]["uid"]
        assert involved["resourceVersion"] == cm["metadata"]["resourceVersion"]
        assert warning["source"] == {"component": "test-controller", "host": "host-1"}
        assert warning["reportingComponent"] == "test-controller" and warning["reportingInstance"] == "host-1"
        assert RFC3339.fullmatch(warning["firstTimestamp"]) and RFC3339.fullmatch(warning["lastTimestamp"])
        assert warning["lastTimestamp"] >= warning["firstTimestamp"]
        assert events["Synced"]["count"] == 1 and events["Synced"]["type"] == "Normal"

        # the field selector kubectl describe uses to find an object's events
        selected = await client.list(EVENTS, namespace, field_selector=f"involvedObject.uid={cm['metadata']['uid']}")
        assert {e["reason"] for e in selected["items"]} == {"BadValue", "Synced"}
