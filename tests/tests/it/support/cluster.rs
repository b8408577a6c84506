//! A real Redis Cluster on loopback: 3 masters and 3 replicas
//! (`redis-server --cluster-enabled yes`, joined by `redis-cli --cluster
//! create`), a short `cluster-node-timeout` so a failover takes seconds;
//! every server killed by pid when dropped, its files in a temporary folder.

use anyhow::{Context, Result, bail};
use redis::cluster_async::ClusterConnection;
use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Milliseconds a node may be unreachable before the others fail it over.
pub const NODE_TIMEOUT_MS: u64 = 1000;

/// One node of the cluster.
pub struct Node {
    pub port: u16,
    child: Option<Child>,
}

impl Node {
    pub fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// A blocking connection to this node alone.
    pub fn conn(&self) -> redis::Connection {
        redis::Client::open(self.url()).unwrap().get_connection().expect("connect to a cluster node")
    }

    /// Whether its process still runs.
    pub fn alive(&self) -> bool {
        self.child.is_some()
    }
}

/// Six nodes, three of them masters, all slots covered.
pub struct LocalCluster {
    pub nodes: Vec<Node>,
    dir: PathBuf,
}

impl LocalCluster {
    /// Starts six nodes and joins them, waiting until every node says
    /// `cluster_state:ok` and the slot map covers every slot.
    pub fn start() -> Self {
        Self::try_start().unwrap_or_else(|e| panic!("cannot start a local Redis Cluster: {e:#}"))
    }

    fn try_start() -> Result<Self> {
        static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = N.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let dir = std::env::temp_dir().join(format!("host-it-cluster-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir)?;
        let mut cluster = LocalCluster { nodes: Vec::new(), dir: dir.clone() };
        for _ in 0..6 {
            let port = free_port_pair()?;
            let child = Command::new("redis-server")
                .args(["--port", &port.to_string(), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
                .args(["--cluster-enabled", "yes", "--cluster-node-timeout", &NODE_TIMEOUT_MS.to_string()])
                .args(["--cluster-config-file", &format!("nodes-{port}.conf"), "--dir", &dir.to_string_lossy()])
                // A replica may be promoted however far behind it is: the
                // tests kill masters on purpose.
                .args(["--cluster-replica-validity-factor", "0"])
                // Replicas synced at once (the default waits 5 s for more).
                .args(["--repl-diskless-sync-delay", "0"])
                .stdout(Stdio::null())
                .stderr(Stdio::inherit())
                .spawn()
                .context("cannot start redis-server: install Debian's redis-server package (`make test` does)")?;
            cluster.nodes.push(Node { port, child: Some(child) });
        }
        for node in &cluster.nodes {
            wait_ping(node.port)?;
        }
        let mut create = Command::new("redis-cli");
        create.arg("--cluster").arg("create");
        for node in &cluster.nodes {
            create.arg(node.addr());
        }
        let out = create
            .args(["--cluster-replicas", "1", "--cluster-yes"])
            .output()
            .context("cannot run redis-cli: install Debian's redis-tools package (`make test` does)")?;
        if !out.status.success() {
            bail!("redis-cli --cluster create failed: {}", String::from_utf8_lossy(&out.stdout));
        }
        cluster.wait_healthy(Duration::from_secs(30))?;
        cluster.wait_replicas_synced(Duration::from_secs(30))?;
        Ok(cluster)
    }

    /// Any master's URL, as a user would give it.
    pub fn url(&self) -> String {
        format!("redis+cluster://127.0.0.1:{}", self.nodes.iter().find(|n| n.alive()).unwrap().port)
    }

    /// A cluster connection for the test's own queries.
    pub async fn connect(&self) -> ClusterConnection {
        let seeds: Vec<String> = self.nodes.iter().filter(|n| n.alive()).map(Node::url).collect();
        redis::cluster::ClusterClientBuilder::new(seeds)
            .retries(10)
            .build()
            .unwrap()
            .get_async_connection()
            .await
            .expect("connect to the local cluster")
    }

    /// The node that serves `slot` now, as a live node's `CLUSTER SLOTS` says.
    pub fn master_of(&self, slot: u16) -> &Node {
        let live = self.nodes.iter().find(|n| n.alive()).expect("a live node");
        let map: Vec<(u16, u16, u16)> = slot_map(&mut live.conn());
        let port = map.iter().find(|(a, b, _)| *a <= slot && slot <= *b).expect("slot covered").2;
        self.nodes.iter().find(|n| n.port == port).expect("a known node")
    }

    /// `CLUSTER MYID` of `node`.
    pub fn id_of(&self, node: &Node) -> String {
        redis::cmd("CLUSTER").arg("MYID").query(&mut node.conn()).unwrap()
    }

    /// kill -9 of `node`'s process (no goodbye to the others).
    pub fn kill(&mut self, port: u16) {
        let node = self.nodes.iter_mut().find(|n| n.port == port).expect("a known node");
        if let Some(mut child) = node.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Waits until every replica's link to its master is up (its first sync
    /// done): a replica promoted before that would come up empty.
    pub fn wait_replicas_synced(&self, limit: Duration) -> Result<()> {
        let deadline = Instant::now() + limit;
        loop {
            let synced = self.nodes.iter().filter(|n| n.alive()).all(|n| {
                let info: String = redis::cmd("INFO").arg("replication").query(&mut n.conn()).unwrap_or_default();
                info.contains("role:master") || info.lines().any(|l| l.trim() == "master_link_status:up")
            });
            if synced {
                return Ok(());
            }
            if Instant::now() > deadline {
                bail!("the replicas did not sync within {} s", limit.as_secs());
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Waits until every live node says the cluster is ok and all slots are
    /// served by live masters.
    pub fn wait_healthy(&self, limit: Duration) -> Result<()> {
        let deadline = Instant::now() + limit;
        loop {
            if self.nodes.iter().filter(|n| n.alive()).all(|n| node_ok(n.port, &self.nodes)) {
                return Ok(());
            }
            if Instant::now() > deadline {
                bail!("the cluster did not become healthy within {} s", limit.as_secs());
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for LocalCluster {
    fn drop(&mut self) {
        for node in &mut self.nodes {
            if let Some(mut child) = node.child.take() {
                let _ = child.kill();
                let _ = child.wait();
            }
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Whether the node on `port` says `cluster_state:ok` and its slot map
/// covers every slot with live masters.
fn node_ok(port: u16, nodes: &[Node]) -> bool {
    let Ok(client) = redis::Client::open(format!("redis://127.0.0.1:{port}")) else { return false };
    let Ok(mut conn) = client.get_connection_with_timeout(Duration::from_secs(1)) else { return false };
    let Ok(info) = redis::cmd("CLUSTER").arg("INFO").query::<String>(&mut conn) else { return false };
    if !info.lines().any(|l| l.trim() == "cluster_state:ok") {
        return false;
    }
    let map = slot_map(&mut conn);
    let covered: u32 = map.iter().map(|(a, b, _)| u32::from(*b) - u32::from(*a) + 1).sum();
    covered == 16_384 && map.iter().all(|(_, _, p)| nodes.iter().any(|n| n.port == *p && n.alive()))
}

/// `CLUSTER SLOTS` as (first, last, master port).
fn slot_map(conn: &mut redis::Connection) -> Vec<(u16, u16, u16)> {
    let reply: Vec<redis::Value> = redis::cmd("CLUSTER").arg("SLOTS").query(conn).unwrap_or_default();
    reply
        .into_iter()
        .filter_map(|row| {
            let redis::Value::Array(items) = row else { return None };
            let int = |v: &redis::Value| if let redis::Value::Int(i) = v { Some(*i) } else { None };
            let redis::Value::Array(master) = items.get(2)? else { return None };
            Some((int(&items[0])? as u16, int(&items[1])? as u16, int(master.get(1)?)? as u16))
        })
        .collect()
}

/// A free port whose cluster bus port (+10000) is free too.
fn free_port_pair() -> Result<u16> {
    for _ in 0..100 {
        let port = TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
        if port < 50_000 && TcpListener::bind(("127.0.0.1", port + 10_000)).is_ok() {
            return Ok(port);
        }
    }
    bail!("no free port pair (PORT and PORT+10000) on loopback")
}

fn wait_ping(port: u16) -> Result<()> {
    let client = redis::Client::open(format!("redis://127.0.0.1:{port}"))?;
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Ok(mut conn) = client.get_connection()
            && redis::cmd("PING").query::<String>(&mut conn).is_ok()
        {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!("redis-server on port {port} did not answer within 10 s");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}
