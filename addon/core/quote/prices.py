"""Prices per vCPU-hour of the compute environment's instance types, from AWS.

* Spot: EC2 ``DescribeSpotPriceHistory`` for the last day, per instance type the latest
  price of each Availability Zone, then the median across zones.
* On-demand: the Price List API (``pricing:GetProducts``, served in us-east-1) when the
  caller may use it; otherwise :data:`FALLBACK_ON_DEMAND_PER_VCPU_HOUR`, the published
  us-east-1 list price of a c6i.xlarge ($0.17 per hour) per vCPU, named as such in the quote.

The stack's instance settings are families (``c7i``) or exact types (``c7i.2xlarge``): a
family is priced at its smallest size with at least the job's vCPUs.
"""

from __future__ import annotations

import json
import logging
import re
import statistics
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

log = logging.getLogger(__name__)

#: c6i.xlarge in us-east-1, Linux, on-demand: $0.17 per hour for 4 vCPUs
FALLBACK_ON_DEMAND_PER_VCPU_HOUR = 0.17 / 4
FALLBACK_SOURCE = "fallback on-demand list price (c6i.xlarge, us-east-1)"
#: sizes of the general/compute families (c, m, r, ...) and their vCPUs
SIZES = {"medium": 1, "large": 2, "xlarge": 4}
MAX_PAGES = 10
#: the Price List API's regions: it answers only there
PRICING_REGION = "us-east-1"


@dataclass
class PriceTable:
    """Price per vCPU-hour of each instance type, and where and when it came from."""

    per_vcpu_hour: dict[str, float]
    source: str  # "Spot", "on-demand", or the fallback's name
    date: str = ""  # YYYY-MM-DD of the newest price used
    zones: dict[str, int] = field(default_factory=dict)  # instance type -> zones in the median

    def summary(self) -> tuple[float, float, float]:
        """(median, lowest, highest) over the instance types."""
        values = sorted(self.per_vcpu_hour.values())
        return statistics.median(values), values[0], values[-1]


def type_vcpus(instance_type: str) -> int:
    """vCPUs of an instance type by its size name: large 2, xlarge 4, 12xlarge 48, ..."""
    size = instance_type.split(".", 1)[1] if "." in instance_type else ""
    if size in SIZES:
        return SIZES[size]
    m = re.fullmatch(r"(\d+)xlarge", size)
    if m:
        return 4 * int(m.group(1))
    raise ValueError(f"Cannot tell the vCPUs of instance type {instance_type!r}: name an exact size like c7i.2xlarge.")


def instance_types_for(names: list[str], job_vcpus: int) -> dict[str, int]:
    """Exact instance types (-> vCPUs) for the stack's families or types, sized for a job."""
    out: dict[str, int] = {}
    for raw in names:
        name = raw.strip()
        if not name or name == "optimal":
            continue
        if "." in name:
            out[name] = type_vcpus(name)
            continue
        sizes = [("large", 2), ("xlarge", 4)] + [(f"{n}xlarge", 4 * n) for n in (2, 4, 8, 12, 16, 24)]
        size, vcpus = next(((s, v) for s, v in sizes if v >= job_vcpus), sizes[-1])
        out[f"{name}.{size}"] = vcpus
    return out


def spot_prices(ec2: Any, types: dict[str, int], now: datetime | None = None) -> PriceTable:
    """Median Spot price across zones of each type, per vCPU-hour (one call per 1000 prices)."""
    now = now or datetime.now(UTC)
    latest: dict[tuple[str, str], tuple[datetime, float]] = {}
    kwargs: dict[str, Any] = {
        "InstanceTypes": sorted(types),
        "ProductDescriptions": ["Linux/UNIX", "Linux/UNIX (Amazon VPC)"],
        "StartTime": now - timedelta(days=1),
    }
    for _ in range(MAX_PAGES):
        page = ec2.describe_spot_price_history(**kwargs)
        for item in page.get("SpotPriceHistory", []):
            key = (item["InstanceType"], item.get("AvailabilityZone", ""))
            when, price = item.get("Timestamp") or now, float(item["SpotPrice"])
            if key not in latest or when > latest[key][0]:
                latest[key] = (when, price)
        token = page.get("NextToken")
        if not token:
            break
        kwargs["NextToken"] = token
    by_type: dict[str, list[float]] = {}
    for (itype, _zone), (_when, price) in latest.items():
        by_type.setdefault(itype, []).append(price)
    table = PriceTable(
        per_vcpu_hour={t: statistics.median(p) / types[t] for t, p in by_type.items() if t in types},
        source="Spot",
        date=max(w for w, _ in latest.values()).date().isoformat() if latest else "",
        zones={t: len(p) for t, p in by_type.items()},
    )
    return table


def on_demand_prices(pricing: Any, types: dict[str, int], region: str) -> PriceTable:
    """On-demand Linux prices per vCPU-hour from the Price List API; the fallback price
    (named in ``source``) when the API refuses or answers nothing for a type."""
    found: dict[str, float] = {}
    date = ""
    try:
        for itype in sorted(types):
            page = pricing.get_products(
                ServiceCode="AmazonEC2",
                Filters=[
                    {"Type": "TERM_MATCH", "Field": f, "Value": v}
                    for f, v in (
                        ("instanceType", itype),
                        ("regionCode", region),
                        ("operatingSystem", "Linux"),
                        ("tenancy", "Shared"),
                        ("preInstalledSw", "NA"),
                        ("capacitystatus", "Used"),
                    )
                ],
                MaxResults=10,
            )
            for raw in page.get("PriceList", []):
                hourly, effective = _hourly_usd(json.loads(raw) if isinstance(raw, str) else raw)
                if hourly:
                    found[itype] = hourly / types[itype]
                    date = max(date, effective)
                    break
    except Exception as exc:  # AccessDenied, no endpoint, throttling: the quote still stands
        log.info("Price List API unavailable (%s): using the fallback on-demand price", exc)
        found = {}
    if len(found) < len(types):
        return PriceTable({t: FALLBACK_ON_DEMAND_PER_VCPU_HOUR for t in types}, FALLBACK_SOURCE)
    return PriceTable(found, "on-demand", date)


def _hourly_usd(product: dict[str, Any]) -> tuple[float, str]:
    for term in (product.get("terms", {}).get("OnDemand") or {}).values():
        for dim in (term.get("priceDimensions") or {}).values():
            usd = (dim.get("pricePerUnit") or {}).get("USD")
            if usd and dim.get("unit", "Hrs") == "Hrs" and float(usd) > 0:
                return float(usd), str(term.get("effectiveDate", ""))[:10]
    return 0.0, ""
