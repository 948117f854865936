//! The hemostat.v1 gRPC API: generated messages, clients and servers, and the descriptor set that server
//! reflection serves. The `.proto` files beside this crate are the source of truth; `buf lint` checks them.

/// Package `hemostat.v1`: `AgentService` (nodes), `FleetService` (operators) and their messages.
#[allow(clippy::large_enum_variant)]
pub mod v1 {
    tonic::include_proto!("hemostat.v1");
}

/// The encoded `FileDescriptorSet` of every hemostat.v1 file and its imports, for server reflection.
pub const FILE_DESCRIPTOR_SET: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/hemostat_descriptor.bin"));

/// Conversions between `std::time::SystemTime` and `google.protobuf.Timestamp`.
pub mod timestamp {
    use std::time::{Duration, SystemTime, UNIX_EPOCH};

    /// The wire form of a time.
    pub fn to_proto(time: SystemTime) -> prost_types::Timestamp {
        let since = time.duration_since(UNIX_EPOCH).unwrap_or_default();
        prost_types::Timestamp { seconds: since.as_secs() as i64, nanos: since.subsec_nanos() as i32 }
    }

    /// The time a wire timestamp names; times before 1970 or malformed read as the epoch.
    pub fn from_proto(ts: &prost_types::Timestamp) -> SystemTime {
        if ts.seconds < 0 || ts.nanos < 0 {
            return UNIX_EPOCH;
        }
        UNIX_EPOCH + Duration::new(ts.seconds as u64, ts.nanos as u32)
    }
}

/// The `grpc.health.v1.Health` service name a coordinator reports `NOT_SERVING` under when it runs on a state
/// store that forgets its state on a restart (a Redis without append-only persistence, accepted with
/// `REDIS_ALLOW_VOLATILE=true`); `hemostat health` asks for it and says so.
pub const DURABLE_STATE_HEALTH_SERVICE: &str = "hemostat.v1.DurableState";
