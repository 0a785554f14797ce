"""The local cluster that the tests, the load tester and the benchmark start
(loadtest/redis_cluster.py)."""

from __future__ import annotations

import socket

from loadtest.redis_cluster import (
    BUS_OFFSET,
    LOOPBACK,
    LocalCluster,
    cluster_ok,
    ephemeral_low,
    free_cluster_ports,
)


def test_ports_and_their_bus_ports_lie_below_the_ephemeral_range() -> None:
    ports = free_cluster_ports(6)

    assert len(set(ports)) == 6
    assert all(port + BUS_OFFSET < ephemeral_low() for port in ports)


def test_a_node_whose_port_is_taken_before_it_binds_is_started_on_another() -> None:
    # GIVEN a three-master cluster whose first node's port another process takes
    # between the cluster's probe and the server's bind
    cluster = LocalCluster(masters=3)
    taken = cluster.ports[0]
    squatter = socket.socket()
    squatter.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    squatter.bind((LOOPBACK, taken))
    squatter.listen()
    try:
        # WHEN the cluster starts
        cluster.start()

        # THEN that node runs on another port and the cluster is whole
        assert cluster.ports[0] != taken
        assert all(cluster_ok(port) for port in cluster.ports)
        assert cluster.processes[0].poll() is None
    finally:
        cluster.close()
        squatter.close()
