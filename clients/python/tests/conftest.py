"""The services under test: a running hypmesh (`npm start`, or scripts/clients-test.sh, which starts
one on ephemeral loopback ports) named by HYPMESH_CORE_ADDR, HYPMESH_RM_ADDR, HYPMESH_VMM_ADDR."""

import os

import grpc
import pytest

import hypmesh


def _address(name: str) -> str:
    value = os.environ.get(name)
    if not value:
        pytest.fail(f"{name} is not set: start hypmesh (npm start) and export the three addresses, or run scripts/clients-test.sh")
    return value


@pytest.fixture(scope="session")
def addresses():
    return {k: _address(f"HYPMESH_{k.upper()}_ADDR") for k in ("core", "rm", "vmm")}


@pytest.fixture(scope="session")
def core_channel(addresses):
    with hypmesh.connect(addresses["core"]) as ch:
        grpc.channel_ready_future(ch).result(timeout=10)
        yield ch


@pytest.fixture(scope="session")
def rm_channel(addresses):
    with hypmesh.connect(addresses["rm"]) as ch:
        yield ch


@pytest.fixture(scope="session")
def vmm_channel(addresses):
    with hypmesh.connect(addresses["vmm"]) as ch:
        yield ch
