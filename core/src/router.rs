//! Where a request runs: on this shard when it owns the partition, on the
//! owner otherwise (over the mesh); admin changes on shard 0, which owns the
//! catalog and pushes each change to every shard before answering.

use std::rc::Rc;

use futures::future::join_all;
use tidegate_proto::protocol::ErrorCode;

use crate::{
    access::Access,
    catalog::Catalog,
    flow::Flow,
    mesh::Mesh,
    shard::{Failure, Op, OpResult, Shard},
};

/// The shard that owns the catalog.
pub(crate) const CATALOG_SHARD: usize = 0;

pub(crate) struct Router {
    pub(crate) shard: Rc<Shard>,
    pub(crate) mesh: Rc<Mesh>,
    /// The shard's copy of the access policy.
    pub(crate) access: Access,
    /// The shard's flow control (window, throttle hint).
    pub(crate) flow: Flow,
    /// The push streams of this shard's connections.
    pub(crate) pushes: crate::handler::push::Pushes,
}

impl Router {
    /// Runs `op` on shard `to`.
    pub(crate) async fn call(&self, to: usize, op: Op) -> OpResult {
        if to == self.shard.id {
            self.run_here(op).await
        } else {
            self.mesh.call(to, op).await
        }
    }

    /// Runs an `Op` on this shard (it came from the mesh, or from a request
    /// this shard received for a partition it owns).
    pub(crate) async fn run_here(&self, op: Op) -> OpResult {
        match op {
            Op::CreateTopic { .. }
            | Op::DeleteTopic { .. }
            | Op::CreateSubscription(_)
            | Op::DeleteSubscription { .. } => self.change_catalog(op).await,
            Op::SubOpen { .. }
            | Op::SubTake { .. }
            | Op::SubWait { .. }
            | Op::SubAck { .. }
            // Boxed: a subscription op may produce (dead letters), which
            // comes back through `call`.
            | Op::SubDescribe { .. } => Box::pin(crate::subscription::served::execute(self, op))
                .await
                .unwrap_or_else(OpResult::Failed),
            other => self.shard.execute(other).await,
        }
    }

    /// Shard 0: applies an admin change to the catalog, stores it, and has
    /// every shard open or close its partitions before answering, so a
    /// produce right after "created" finds the partition on any shard.
    async fn change_catalog(&self, op: Op) -> OpResult {
        if self.shard.id != CATALOG_SHARD {
            return OpResult::Failed(Failure::new(
                ErrorCode::Internal,
                "catalog changes run on shard 0",
            ));
        }
        let _guard = self.shard.admin.lock().await;
        let mut catalog: Catalog = (**self.shard.catalog.borrow()).clone();
        let changed = match op {
            Op::CreateTopic {
                name,
                partitions,
                settings,
            } => catalog
                .create_topic(&name, partitions, settings, now_ms())
                .map(|_| ()),
            Op::DeleteTopic { name } => catalog.delete_topic(&name).map(|_| ()),
            Op::CreateSubscription(sub) => catalog
                .create_subscription(&sub.to_config(), now_ms())
                .map(|_| ()),
            Op::DeleteSubscription { name } => catalog.delete_subscription(&name).map(|_| ()),
            _ => return OpResult::Failed(Failure::new(ErrorCode::Internal, "not an admin op")),
        };
        if let Err(e) = changed {
            return OpResult::Failed(e.into());
        }
        if let Err(e) = self.shard.store.save(&catalog).await {
            return OpResult::Failed(e.into());
        }
        let bytes = match catalog.to_bytes() {
            Ok(b) => b,
            Err(e) => return OpResult::Failed(e.into()),
        };
        let shards = self.shard.shards.get();
        let applied = join_all((0..shards).map(|to| {
            let bytes = bytes.clone();
            async move {
                if to == self.shard.id {
                    self.shard.execute(Op::ApplyCatalog(bytes)).await
                } else {
                    self.mesh.call(to, Op::ApplyCatalog(bytes)).await
                }
            }
        }))
        .await;
        for result in applied {
            if let OpResult::Failed(f) = result {
                return OpResult::Failed(f);
            }
        }
        OpResult::Done
    }
}

pub(crate) fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}
