"""What an SLO may filter or group by: attribute names and the rollup column that holds each.

The spec validates `filters`/`group_by` against these maps, the SLI sources read these columns, and
the health rollup DDL (`slo/store.py`) creates them, so the three cannot drift apart. Names come
from `semconv`; nothing here imports the SLO engine or storage, so the spec can depend on it.
"""
from __future__ import annotations

from infersight import semconv as sc

# Request and latency rollups (`infersight_requests_1m`, `infersight_latency_1m`): attribute -> column.
ROLLUP_ATTRIBUTES = {
    sc.CLOUD_PROVIDER: "CloudProvider",
    sc.CLOUD_REGION: "CloudRegion",
    sc.HOST_NAME: "HostName",
    sc.MODEL: "Model",
    sc.SERVER_KIND: "ServerKind",
    sc.TENANT: "Tenant",
}

# Accelerator-health rollup: attribute -> column (resource attributes, plus the data point's hw.type).
HEALTH = "infersight_hw_health_1m"
HEALTH_COLUMNS = {
    sc.CLOUD_PROVIDER: "CloudProvider",
    sc.CLOUD_REGION: "CloudRegion",
    sc.CLOUD_ZONE: "AvailabilityZone",
    sc.HOST_NAME: "HostName",
    sc.HOST_TYPE: "HostType",
    sc.SERVICE_NAME: "ServiceName",
    sc.HW_TYPE: "HwType",
}

# Probe SLIs (`slo/sli/probe.py`) read the probe collector's points, which carry the probed endpoint's
# cloud.provider/cloud.region as point attributes (not the agent's resource): attribute -> the same key.
PROBE_ATTRIBUTES = (sc.CLOUD_PROVIDER, sc.CLOUD_REGION, sc.MODEL, sc.PROVIDER_NAME, sc.PROBE_ENDPOINT,
                    sc.SERVING_REGION, sc.SERVER_ADDRESS, sc.TENANT)
