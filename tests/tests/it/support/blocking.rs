//! The Redis queries of `queries.rs` on a blocking connection, for tests that
//! run no async runtime (the dashboard's): same commands, same parsing.

use super::queries::{consumers_of, groups_of, pending_of, xinfo_consumers, xinfo_groups, xpending};
use super::{GroupInfo, redis_url};

/// A blocking connection to the test Redis.
pub fn connect() -> redis::Connection {
    redis::Client::open(redis_url()).unwrap().get_connection().expect("connect to test redis")
}

/// Every group of `stream` (`XINFO GROUPS`); none while the stream does not exist.
pub fn groups(conn: &mut redis::Connection, stream: &str) -> Vec<GroupInfo> {
    groups_of(xinfo_groups(stream).query(conn).unwrap_or_default())
}

/// Consumers of a group (`XINFO CONSUMERS`): (name, pending); none while the group does not exist.
pub fn consumers(conn: &mut redis::Connection, stream: &str, group: &str) -> Vec<(String, u64)> {
    consumers_of(xinfo_consumers(stream, group).query(conn).unwrap_or_default())
}

/// Pending entries of a group (`XPENDING`): (id, consumer, delivery count); none while the group does not exist yet.
pub fn pending(conn: &mut redis::Connection, stream: &str, group: &str) -> Vec<(String, String, u64)> {
    pending_of(xpending(stream, group).query(conn))
}

/// `XLEN key`.
pub fn xlen(conn: &mut redis::Connection, key: &str) -> u64 {
    redis::cmd("XLEN").arg(key).query(conn).expect("XLEN")
}
