"""The local Citus cluster of ``neonpro.devtools.citus``: started, distributed, found again,
removed."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import psycopg

from neonpro.devtools import citus
from tests.reliability.harness import free_port


def test_the_cluster_has_its_workers_and_distributes_by_clinic(
        citus_cluster: citus.LocalCluster) -> None:
    with psycopg.connect(citus_cluster.url(), autocommit=True) as conn:
        workers = sorted(r[1] for r in conn.execute(
            "SELECT * FROM citus_get_active_worker_nodes()"))
        assert workers == citus_cluster.workers
        conn.execute("CREATE TABLE probe (clinic_id uuid, n int, PRIMARY KEY (clinic_id, n))")
        conn.execute("SELECT create_distributed_table('probe', 'clinic_id')")
        conn.execute("INSERT INTO probe SELECT gen_random_uuid(), g FROM generate_series(1, 40) g")
        placed = dict(conn.execute(
            "SELECT nodeport, count(*) FROM citus_shards WHERE table_name = 'probe'::regclass "
            "GROUP BY nodeport").fetchall())
        conn.execute("DROP TABLE probe")
    assert sorted(placed) == citus_cluster.workers  # shards on both workers
    assert sum(placed.values()) == 4  # the cluster's shard count


def test_up_finds_a_running_cluster_again(citus_cluster: citus.LocalCluster) -> None:
    again = citus.up(Path(citus_cluster.base), citus_cluster.coordinator)
    assert again == citus_cluster
    assert citus.main(["url", "--base", citus_cluster.base]) == 0


def test_down_stops_the_nodes_and_removes_their_files() -> None:
    # not pytest's tmp_path: its parents are closed to the postgres account that runs nodes
    home = Path(tempfile.mkdtemp(prefix="neonpro-citus-down-", dir="/tmp"))
    home.chmod(0o755)
    try:
        port = free_port()
        while not (citus.port_free(port) and citus.port_free(port + 1)):
            port = free_port()
        cluster = citus.up(home / "one", port, workers=1, shard_count=2)
        assert citus.running(cluster)
        citus.down(home / "one")
        assert not (home / "one").exists()
        assert citus.port_free(port)
        assert citus.port_free(port + 1)
        assert citus.main(["url", "--base", str(home / "one")]) == 1
        citus.down(home / "never-made")  # nothing there: nothing to do, no error
    finally:
        citus.down(home / "one")
        shutil.rmtree(home, ignore_errors=True)
