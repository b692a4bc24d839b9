"""Cloud identity from instance metadata, against local servers that answer like each provider."""
from __future__ import annotations

import asyncio
import json
import logging
from pathlib import Path

import pytest
from aiohttp import web

from infersight.agent.resource import CloudDetectionError, detect_cloud, resolve_resource
from infersight.config import ResourceConfig

FIX = Path(__file__).parent / "fixtures" / "cloud"


def doc(name: str) -> dict:
    return json.loads((FIX / name).read_text())


def aws_app() -> web.Application:
    async def token(req):
        if "X-aws-ec2-metadata-token-ttl-seconds" not in req.headers:
            return web.Response(status=400)
        return web.Response(text="AQAEAFakeTokenFromImdsV2==")

    async def identity(req):  # IMDSv2-only instance: no token, no answer
        if req.headers.get("X-aws-ec2-metadata-token") != "AQAEAFakeTokenFromImdsV2==":
            return web.Response(status=401)
        return web.Response(text=(FIX / "aws_instance_identity_document.json").read_text(), content_type="text/plain")

    app = web.Application()
    app.router.add_put("/latest/api/token", token)
    app.router.add_get("/latest/dynamic/instance-identity/document", identity)
    return app


def azure_app() -> web.Application:
    async def compute(req):
        if req.headers.get("Metadata") != "true" or "api-version" not in req.query:
            return web.json_response({"error": "Bad request. Required metadata header not specified"}, status=400)
        return web.json_response(doc("azure_compute.json"))

    app = web.Application()
    app.router.add_get("/metadata/instance/compute", compute)
    return app


def gcp_app() -> web.Application:
    async def instance(req):
        if req.headers.get("Metadata-Flavor") != "Google":
            return web.Response(status=403, text="Missing Metadata-Flavor:Google header.")
        return web.json_response(doc("gcp_instance.json"), headers={"Metadata-Flavor": "Google"})

    async def project(req):
        if req.headers.get("Metadata-Flavor") != "Google":
            return web.Response(status=403)
        return web.Response(text="infer-prod", content_type="application/text", headers={"Metadata-Flavor": "Google"})

    app = web.Application()
    app.router.add_get("/computeMetadata/v1/instance/", instance)
    app.router.add_get("/computeMetadata/v1/project/project-id", project)
    return app


def oci_app() -> web.Application:
    async def instance(req):
        if req.headers.get("Authorization") != "Bearer Oracle":
            return web.Response(status=401)
        return web.json_response(doc("oci_instance.json"))

    app = web.Application()
    app.router.add_get("/opc/v2/instance/", instance)
    return app


def slow_app(delay: float) -> web.Application:
    async def hang(req):
        await asyncio.sleep(delay)
        return web.Response(status=404)

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", hang)
    return app


@pytest.fixture
async def serve(port):
    runners = []

    async def start(app: web.Application) -> str:
        runner = web.AppRunner(app, shutdown_timeout=0.1)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", port).start()
        runners.append(runner)
        return f"http://127.0.0.1:{port}"

    yield start
    for r in runners:
        await r.cleanup()


EXPECTED = {
    "aws": (aws_app, {"cloud.provider": "aws", "cloud.platform": "aws_ec2", "cloud.region": "us-east-2",
                      "cloud.availability_zone": "us-east-2b", "cloud.account.id": "123456789012",
                      "host.id": "i-0a1b2c3d4e5f67890", "host.type": "p5.48xlarge"}),
    "azure": (azure_app, {"cloud.provider": "azure", "cloud.platform": "azure_vm", "cloud.region": "eastus2",
                          "cloud.availability_zone": "2", "cloud.account.id": "8d2f6a3e-1c4b-4e7a-9f0d-2b3c4d5e6f70",
                          "host.id": "02aab8a4-74ef-476e-8182-f6d2ba4166a6", "host.type": "Standard_ND96isr_H100_v5"}),
    "gcp": (gcp_app, {"cloud.provider": "gcp", "cloud.platform": "gcp_compute_engine", "cloud.region": "us-central1",
                      "cloud.availability_zone": "us-central1-a", "cloud.account.id": "infer-prod",
                      "host.id": "4520031799277581759", "host.type": "a3-highgpu-8g"}),
    "oracle_cloud": (oci_app, {"cloud.provider": "oracle_cloud", "cloud.platform": "oracle_cloud_compute",
                               "cloud.region": "us-ashburn-1", "cloud.availability_zone": "Uocm:US-ASHBURN-AD-1",
                               "host.id": "ocid1.instance.oc1.iad.anuwcljt2fkyzjicbq6v7pnk3lw5q",
                               "host.type": "BM.GPU.H100.8"}),
}


@pytest.mark.parametrize("cloud", list(EXPECTED))
async def test_each_cloud_is_detected(serve, cloud):
    make_app, expected = EXPECTED[cloud]
    base = await serve(make_app())
    assert await detect_cloud(base, timeout_seconds=2) == expected


async def test_detected_identity_lands_in_resource_and_config_wins(serve, tmp_path):
    base = await serve(aws_app())
    mid = tmp_path / "machine-id"
    mid.write_text("4c4c4544004a3510804cb7c04f4e3332\n")
    cfg = ResourceConfig(service_name="edge", detect_cloud=True, cloud_metadata_base_url=base,
                         attributes={"cloud.region": "us-east-2-lz", "deployment.environment": "prod"})
    attrs = await asyncio.to_thread(resolve_resource, cfg, hostname="node-1", machine_id_paths=(mid,))
    assert attrs["service.name"] == "edge" and attrs["host.name"] == "node-1"
    assert attrs["host.id"] == "i-0a1b2c3d4e5f67890"  # semconv: on a cloud, host.id is the instance id
    assert attrs["cloud.provider"] == "aws" and attrs["cloud.region"] == "us-east-2-lz"
    assert attrs["deployment.environment"] == "prod"


async def test_configured_gpu_cloud_without_detection(tmp_path):
    mid = tmp_path / "machine-id"
    mid.write_text("4c4c4544004a3510804cb7c04f4e3332\n")
    cfg = ResourceConfig(attributes={"cloud.provider": "coreweave", "cloud.region": "us-east-04",
                                     "host.type": "gd-8xh100ib-i128"})
    attrs = await asyncio.to_thread(resolve_resource, cfg, hostname="n", machine_id_paths=(tmp_path / "absent", mid))
    assert attrs == {"service.name": "infersight-agent", "host.name": "n",
                     "host.id": "4c4c4544004a3510804cb7c04f4e3332",
                     "cloud.provider": "coreweave", "cloud.region": "us-east-04", "host.type": "gd-8xh100ib-i128"}


async def test_timeout_is_reported_per_provider(serve):
    base = await serve(slow_app(2.0))
    loop = asyncio.get_running_loop()
    started = loop.time()
    with pytest.raises(CloudDetectionError, match="aws: timed out.*oracle_cloud: timed out"):
        await detect_cloud(base, timeout_seconds=0.3)
    assert loop.time() - started < 1.5


async def test_wrong_answers_are_not_taken_for_a_cloud(serve):
    async def not_json(req):
        return web.Response(text="<html>captive portal</html>")

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", not_json)
    base = await serve(app)
    with pytest.raises(CloudDetectionError) as err:
        await detect_cloud(base, timeout_seconds=1)
    assert "gcp: answer lacks Metadata-Flavor: Google" in str(err.value)


async def test_failure_is_logged_once_and_not_fatal(port, caplog, tmp_path):
    cfg = ResourceConfig(detect_cloud=True, cloud_metadata_base_url=f"http://127.0.0.1:{port}",
                         cloud_metadata_timeout_seconds=0.5)
    with caplog.at_level(logging.WARNING, logger="infersight.agent.resource"):
        attrs = await asyncio.to_thread(resolve_resource, cfg, hostname="n", machine_id_paths=(tmp_path / "none",))
    assert attrs == {"service.name": "infersight-agent", "host.name": "n"}
    (record,) = caplog.records
    assert "cloud detection failed" in record.getMessage() and "aws:" in record.getMessage()
