"""The cluster tests use the session's real Redis Cluster from tests/conftest.py
(`local_cluster`, `redis_cluster_url`, `cluster_client`): six
`redis-server --cluster-enabled yes` processes on loopback, 3 masters and 3
replicas, started once and stopped at the session's end.
"""
